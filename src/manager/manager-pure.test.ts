import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DaemonRow } from "../store/index.ts";
import { daemonPaths, newDaemonId, nextApiSocket, nydusdArgs } from "./command.ts";
import { instanceConfig, loadTemplate, pickMirror } from "./daemon-config.ts";
import { blobIdOfCacheFile } from "./filesystem.ts";
import { isDaemonOf } from "./process.ts";

const row = (over: Partial<DaemonRow> = {}): DaemonRow => ({
  id: "d1",
  pid: 0,
  apiSocket: "/r/socket/d1/api.sock",
  mode: "dedicated",
  fsDriver: "fusedev",
  mountpoint: "/r/snapshots/5/mnt",
  configDir: "/r/config/d1",
  bootstrap: "/r/snapshots/5/fs/image/image.boot",
  supervisorPath: null,
  logDir: "/r/logs/d1",
  logLevel: "info",
  logToStdout: false,
  logRotationSize: 100,
  threadNum: 0,
  failoverPolicy: "resend",
  createdAt: 0,
  ...over,
});

describe("nydusd command lines (docs/compat.md §4.3)", () => {
  test("dedicated, restart policy, log file", () => {
    expect(nydusdArgs(row())).toEqual([
      "fuse",
      "--config", "/r/config/d1/config.json",
      "--bootstrap", "/r/snapshots/5/fs/image/image.boot",
      "--mountpoint", "/r/snapshots/5/mnt",
      "--apisock", "/r/socket/d1/api.sock",
      "--log-level", "info",
      "--log-rotation-size", "100",
      "--log-file", "/r/logs/d1/nydusd.log",
      "--failover-policy", "resend",
    ]);
  });
  test("shared, failover, threads, stdout: no config/bootstrap/log file; id and supervisor in place", () => {
    const args = nydusdArgs(row({ bootstrap: null, mode: "shared", mountpoint: "/r/mnt", supervisorPath: "/r/supervisor/d1.sock", threadNum: 4, logToStdout: true, logRotationSize: 0 }));
    expect(args).toEqual([
      "fuse",
      "--thread-num", "4",
      "--id", "d1",
      "--mountpoint", "/r/mnt",
      "--apisock", "/r/socket/d1/api.sock",
      "--log-level", "info",
      "--supervisor", "/r/supervisor/d1.sock",
      "--failover-policy", "resend",
    ]);
  });
  test("daemon ids are 20 base32hex characters, unique, ordered by time", () => {
    const a = newDaemonId(1_000_000_000_000);
    const b = newDaemonId(2_000_000_000_000);
    expect(a).toMatch(/^[0-9a-v]{20}$/);
    expect(a < b).toBe(true);
    expect(new Set(Array.from({ length: 100 }, () => newDaemonId())).size).toBe(100);
  });
  test("paths fit under the root", () => {
    const p = daemonPaths("/root", "/root/logs", "abc");
    expect(p.apiSocket).toBe("/root/socket/abc/api.sock");
    expect(p.supervisor).toBe("/root/supervisor/abc.sock");
    expect(p.configFile).toBe("/root/config/abc/config.json");
  });
});

describe("per-instance daemon config (§4.5)", () => {
  const dir = mkdtempSync(join(tmpdir(), "rafsnap-dcfg-"));
  const { template } = loadTemplate(join(dir, "absent.json"));
  const base = { rafsKey: "7", cacheDir: "/cache", labels: {}, dockerConfig: join(dir, "no-docker.json") };

  test("the built-in template: registry backend, no prefetch; host, repo, id and work dir filled in", () => {
    const c = instanceConfig(template, { ...base, imageRef: "docker.io/library/busybox:1" });
    expect(c.device.backend.type).toBe("registry");
    expect(c.device.backend.config.host).toBe("index.docker.io");
    expect(c.device.backend.config.repo).toBe("library/busybox");
    expect(c.device.id).toBe("/7");
    expect(c.device.cache.config.work_dir).toBe("/cache");
    expect((c.fs_prefetch as { enable: boolean }).enable).toBe(false);
    expect(c.device.backend.config.auth).toBeUndefined();
    // The template itself is untouched.
    expect(template.device.backend.config.host).toBeUndefined();
  });
  test("credentials: labels first (user:pass → auth, token only → registry_token), then docker config", () => {
    const withUser = instanceConfig(template, {
      ...base,
      imageRef: "127.0.0.1:5000/app:1",
      labels: { "containerd.io/snapshot/pullusername": "u", "containerd.io/snapshot/pullsecret": "p" },
    });
    expect(withUser.device.backend.config.auth).toBe(Buffer.from("u:p").toString("base64"));
    const token = instanceConfig(template, { ...base, imageRef: "127.0.0.1:5000/app:1", labels: { "containerd.io/snapshot/pullsecret": "tok" } });
    expect(token.device.backend.config.registry_token).toBe("tok");
    const dc = join(dir, "docker.json");
    writeFileSync(dc, JSON.stringify({ auths: { "127.0.0.1:5000": { auth: Buffer.from("x:y").toString("base64") } } }));
    const fromFile = instanceConfig(template, { ...base, imageRef: "127.0.0.1:5000/app:1", dockerConfig: dc });
    expect(fromFile.device.backend.config.auth).toBe(Buffer.from("x:y").toString("base64"));
  });
  test("hosts.toml mirrors: host dir with _port_, then host, then _default; first usable mirror wins", async () => {
    const m = join(dir, "certs.d");
    mkdirSync(join(m, "127.0.0.1_5000_"), { recursive: true });
    writeFileSync(join(m, "127.0.0.1_5000_", "hosts.toml"), 'server = "http://127.0.0.1:5000"\n[host."https://mirror.local:443"]\n  ca = "/ca.pem"\n[host."http://second:80"]\n');
    const never = async () => {
      throw new Error("no ping expected");
    };
    expect(await pickMirror(m, "127.0.0.1:5000", never)).toEqual({ host: "mirror.local:443", scheme: "https", ca: ["/ca.pem"], skipVerify: false });
    expect(await pickMirror(m, "other:1", never)).toBeUndefined();
    mkdirSync(join(m, "_default"));
    writeFileSync(join(m, "_default", "hosts.toml"), '[host."http://fallback:5000"]\nskip_verify = true\n');
    const fallback = await pickMirror(m, "other:1", never);
    expect(fallback).toEqual({ host: "fallback:5000", scheme: "http", ca: [], skipVerify: true });
    const c = instanceConfig(template, { ...base, imageRef: "127.0.0.1:5000/app:1", mirror: await pickMirror(m, "127.0.0.1:5000", never) });
    expect(c.device.backend.config.host).toBe("mirror.local:443");
    expect(c.device.backend.config.scheme).toBe("https");
    expect(c.device.backend.config.ca_cert_files).toEqual(["/ca.pem"]);
    writeFileSync(join(m, "_default", "hosts.toml"), '[host."ftp://nope"]\n');
    await expect(pickMirror(m, "x:1", never)).rejects.toThrow(/not an http\(s\) URL/);
  });
  test("hosts.toml ping_url: a mirror whose ping fails is passed over; none usable → the origin", async () => {
    const m = join(dir, "certs-ping.d");
    mkdirSync(join(m, "reg:5000"), { recursive: true });
    writeFileSync(join(m, "reg:5000", "hosts.toml"), '[host."http://down:80"]\nping_url = "http://down/ping"\n[host."http://up:80"]\nping_url = "http://up/ping"\n');
    const asked: string[] = [];
    const ping = async (url: string) => {
      asked.push(url);
      return url.includes("up");
    };
    expect((await pickMirror(m, "reg:5000", ping))?.host).toBe("up:80");
    expect(asked).toEqual(["http://down/ping", "http://up/ping"]);
    expect(await pickMirror(m, "reg:5000", async () => false)).toBeUndefined();
    const c = instanceConfig(template, { ...base, imageRef: "reg:5000/app:1", mirror: undefined });
    expect(c.device.backend.config.host).toBe("reg:5000");
  });
  test("a real ping: 2xx picks the mirror, 500 or no answer does not", async () => {
    let status = 500;
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("", { status }) });
    try {
      const m = join(dir, "certs-real.d");
      mkdirSync(join(m, "_default"), { recursive: true });
      writeFileSync(join(m, "_default", "hosts.toml"), `[host."http://127.0.0.1:${server.port}"]\nping_url = "http://127.0.0.1:${server.port}/ping"\n`);
      expect(await pickMirror(m, "reg:1")).toBeUndefined();
      status = 200;
      expect((await pickMirror(m, "reg:1"))?.host).toBe(`127.0.0.1:${server.port}`);
    } finally {
      server.stop(true);
    }
  });
  test("a template that is not fusedev JSON is refused naming the file", () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, '{"device": {}}');
    expect(() => loadTemplate(bad)).toThrow(/bad.json: needs the objects device.backend and device.cache/);
    writeFileSync(bad, "{");
    expect(() => loadTemplate(bad)).toThrow(/bad.json/);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("cache file names (§8)", () => {
  test("suffixes are stripped to the blob id; other names are ids as they stand", () => {
    const id = "a".repeat(64);
    for (const s of [".blob.data", ".chunk_map", ".blob.data.chunk_map", ".blob.meta", ".image.disk", ".layer.disk", ""]) {
      expect(blobIdOfCacheFile(id + s)).toBe(id);
    }
  });
});

describe("[cgroup] memory_limit", () => {
  test("sizes, units and percentages in bytes; empty is no limit", async () => {
    const { memoryLimitBytes } = await import("./cgroup.ts");
    expect(memoryLimitBytes("", 1000)).toBeUndefined();
    expect(memoryLimitBytes("209715200", 0)).toBe(209715200);
    expect(memoryLimitBytes("200MiB", 0)).toBe(200 << 20);
    expect(memoryLimitBytes("200Mi", 0)).toBe(200 << 20);
    expect(memoryLimitBytes("10%", 1000)).toBe(100);
    expect(() => memoryLimitBytes("200MB", 0)).toThrow(/memory_limit/);
  });
  test("no memory controller: a warning, no cgroup; disabled: none", async () => {
    const { daemonCgroup } = await import("./cgroup.ts");
    const warnings: string[] = [];
    const log = { warn: (m: string) => warnings.push(m), info: () => {} } as unknown as Parameters<typeof daemonCgroup>[1];
    const d = mkdtempSync(join(tmpdir(), "rafsnap-cg-"));
    expect(daemonCgroup({ enable: true, memory_limit: "" }, log, d)).toBeUndefined();
    expect(warnings[0]).toContain("has no cgroup memory controller");
    // A unified tree without the memory controller is no better.
    writeFileSync(join(d, "cgroup.controllers"), "cpu io pids\n");
    expect(daemonCgroup({ enable: true, memory_limit: "" }, log, d)).toBeUndefined();
    expect(daemonCgroup({ enable: false, memory_limit: "" }, log, d)).toBeUndefined();
    rmSync(d, { recursive: true, force: true });
  });
  test("cgroup v2: system.slice/nydusd with memory.max; v1: the memory tree with memory.limit_in_bytes; '' is a quarter of the node", async () => {
    const { daemonCgroup } = await import("./cgroup.ts");
    const log = { warn: () => {}, info: () => {} } as unknown as Parameters<typeof daemonCgroup>[1];
    const total = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]) * 1024;
    const v2 = mkdtempSync(join(tmpdir(), "rafsnap-cg2-"));
    writeFileSync(join(v2, "cgroup.controllers"), "cpu memory pids\n");
    const c2 = daemonCgroup({ enable: true, memory_limit: "" }, log, v2);
    expect(c2?.dir).toBe(join(v2, "system.slice", "nydusd"));
    expect(Number(readFileSync(join(v2, "system.slice", "nydusd", "memory.max"), "utf8"))).toBe(Math.floor(total / 4));
    const v1 = mkdtempSync(join(tmpdir(), "rafsnap-cg1-"));
    mkdirSync(join(v1, "memory"));
    writeFileSync(join(v1, "memory", "memory.limit_in_bytes"), "9223372036854771712\n");
    const c1 = daemonCgroup({ enable: true, memory_limit: "300MiB" }, log, v1);
    expect(c1?.dir).toBe(join(v1, "memory", "system.slice", "nydusd"));
    expect(readFileSync(join(v1, "memory", "system.slice", "nydusd", "memory.limit_in_bytes"), "utf8")).toBe(String(300 << 20));
    c1?.add(4242);
    expect(readFileSync(join(v1, "memory", "system.slice", "nydusd", "cgroup.procs"), "utf8")).toBe("4242");
    // "0": the cgroup, no limit.
    const none = mkdtempSync(join(tmpdir(), "rafsnap-cg0-"));
    mkdirSync(join(none, "memory"));
    writeFileSync(join(none, "memory", "memory.limit_in_bytes"), "x");
    expect(daemonCgroup({ enable: true, memory_limit: "0" }, log, none)?.limitBytes).toBe(0);
    for (const d of [v1, v2, none]) rmSync(d, { recursive: true, force: true });
  });
});

describe("pid ownership", () => {
  test("a recorded pid is the daemon's only while its command line names the daemon's API socket", async () => {
    const sock = "/run/rafsnap-test/socket/abc/api.sock";
    // A stand-in process with the daemon's arguments (bash keeps them in its command line).
    const ours = Bun.spawn(["bash", "-c", "sleep 30; :", "nydusd", "--apisock", sock, "--id", "abc"]);
    const other = Bun.spawn(["sleep", "30"]);
    try {
      await Bun.sleep(50);
      expect(isDaemonOf(ours.pid, { apiSocket: sock })).toBe(true);
      expect(isDaemonOf(ours.pid, { apiSocket: `${sock}.other` })).toBe(false);
      expect(isDaemonOf(other.pid, { apiSocket: sock })).toBe(false);
      expect(isDaemonOf(2 ** 22 + 7, { apiSocket: sock })).toBe(false); // no such pid
    } finally {
      ours.kill();
      other.kill();
    }
  });
});

test("a hot upgrade's successor: --upgrade after the subcommand, the next API socket beside the current one", () => {
  expect(nydusdArgs(row(), undefined, true).slice(0, 2)).toEqual(["fuse", "--upgrade"]);
  expect(nydusdArgs(row())).not.toContain("--upgrade");
  expect(nextApiSocket("/r/socket/d1/api.sock")).toBe("/r/socket/d1/api1.sock");
  expect(nextApiSocket("/r/socket/d1/api9.sock")).toBe("/r/socket/d1/api10.sock");
  expect(() => nextApiSocket("/r/socket/d1/other.sock")).toThrow("api[N].sock");
});
