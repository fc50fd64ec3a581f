import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { instanceConfig, loadTemplate, pickMirror } from "./daemon-config.ts";

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
    writeFileSync(
      join(m, "127.0.0.1_5000_", "hosts.toml"),
      'server = "http://127.0.0.1:5000"\n[host."https://mirror.local:443"]\n  ca = "/ca.pem"\n[host."http://second:80"]\n',
    );
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
    writeFileSync(
      join(m, "reg:5000", "hosts.toml"),
      '[host."http://down:80"]\nping_url = "http://down/ping"\n[host."http://up:80"]\nping_url = "http://up/ping"\n',
    );
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
