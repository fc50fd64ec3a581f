import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DaemonRow } from "../store/index.ts";
import { daemonConfigFile, daemonPaths, newDaemonId, nextApiSocket, nydusdArgs } from "./command.ts";
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
      "--config",
      "/r/config/d1/config.json",
      "--bootstrap",
      "/r/snapshots/5/fs/image/image.boot",
      "--mountpoint",
      "/r/snapshots/5/mnt",
      "--apisock",
      "/r/socket/d1/api.sock",
      "--log-level",
      "info",
      "--log-rotation-size",
      "100",
      "--log-file",
      "/r/logs/d1/nydusd.log",
      "--failover-policy",
      "resend",
    ]);
  });
  test("shared, failover, threads, stdout: no config/bootstrap/log file; id and supervisor in place", () => {
    const args = nydusdArgs(
      row({
        bootstrap: null,
        mode: "shared",
        mountpoint: "/r/mnt",
        supervisorPath: "/r/supervisor/d1.sock",
        threadNum: 4,
        logToStdout: true,
        logRotationSize: 0,
      }),
    );
    expect(args).toEqual([
      "fuse",
      "--thread-num",
      "4",
      "--id",
      "d1",
      "--mountpoint",
      "/r/mnt",
      "--apisock",
      "/r/socket/d1/api.sock",
      "--log-level",
      "info",
      "--supervisor",
      "/r/supervisor/d1.sock",
      "--failover-policy",
      "resend",
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
    expect(daemonConfigFile(p.configDir)).toBe(p.configFile);
    expect(daemonConfigFile(p.configDir, "42")).toBe("/root/config/abc/42/config.json");
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
