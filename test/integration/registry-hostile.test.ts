// The registry client against hostile registries: small HTTP(S) servers written here on
// 127.0.0.1 (each port its own origin) that redirect elsewhere, challenge from other hosts,
// announce http token realms from https, move uploads to other hosts, trickle or never end
// their bodies, or answer ranges that were not asked. Credentials must reach only the
// registry's own origin (and its https token service); time and memory stay bounded.
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ErrorKind } from "../../src/errdefs/index.ts";
import { backendOf } from "../../src/nydusd/index.ts";
import { parseDaemonConfig } from "../../src/nydusd/config.ts";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { failure } from "../support/failure.ts";
import { makePki } from "../harness/pki.ts";

const SECRET = { username: "alice", password: "s3cret-pw" };
const BASIC = `Basic ${Buffer.from(`${SECRET.username}:${SECRET.password}`).toString("base64")}`;
const DIGEST = `sha256:${"a".repeat(64)}`;

/** A server that records every request's method, path and Authorization header. */
interface Spy {
  origin: string;
  host: string;
  seen: { method: string; path: string; auth: string | null; custom: string | null }[];
  stop(): void;
}

function spy(handler: (req: Request, url: URL) => Response | Promise<Response>, tls?: { cert: string; key: string }): Spy {
  const seen: Spy["seen"] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls,
    idleTimeout: 0,
    fetch(req) {
      const url = new URL(req.url);
      seen.push({ method: req.method, path: url.pathname, auth: req.headers.get("authorization"), custom: req.headers.get("x-mirror-secret") });
      return handler(req, url);
    },
  });
  const host = `127.0.0.1:${server.port}`;
  return { origin: `${tls ? "https" : "http"}://${host}`, host, seen, stop: () => server.stop(true) };
}

/** A body that sends `piece` every `everyMs` for ever (until cancelled). */
function endless(piece: Uint8Array, everyMs: number): ReadableStream<Uint8Array> {
  let timer: ReturnType<typeof setInterval> | undefined;
  return new ReadableStream({
    start(ctl) {
      ctl.enqueue(piece);
      timer = setInterval(() => {
        try {
          ctl.enqueue(piece);
        } catch {
          clearInterval(timer);
        }
      }, everyMs);
    },
    cancel() {
      clearInterval(timer);
    },
  });
}

const cleanup = new Cleanup();
afterAll(() => cleanup.run());
const serve = (h: Parameters<typeof spy>[0], tls?: { cert: string; key: string }) => {
  const s = spy(h, tls);
  cleanup.defer(`server ${s.origin}`, () => s.stop());
  return s;
};

describe("hostile registries: credentials stay with their origin", () => {
  test("a blob redirected to another origin that challenges with a third origin's realm: no credentials leave", async () => {
    const third = serve(() => Response.json({ token: "t" }));
    const other = serve(() => new Response("", { status: 401, headers: { "www-authenticate": `Bearer realm="${third.origin}/token",service="x"` } }));
    const registry = serve((_req, url) => Response.redirect(`${other.origin}${url.pathname}`, 307));
    const c = new RegistryClient(registry.host, { credentials: SECRET, retries: 0 });
    const f = await failure(c.readRange("app", DIGEST, 0, 10));
    expect(f.kind).toBe(ErrorKind.Unauthenticated);
    expect(other.seen.length).toBeGreaterThan(0);
    expect(other.seen.every((r) => r.auth === null)).toBe(true);
    expect(third.seen).toEqual([]);
  });

  test("an upload Location on another origin gets no credentials (PATCH and PUT)", async () => {
    const elsewhere = serve((req) => new Response("", { status: req.method === "PUT" ? 201 : 202, headers: { location: "/upload/2" } }));
    const registry = serve((req, url) => {
      if (req.headers.get("authorization") !== BASIC) return new Response("", { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } });
      if (req.method === "HEAD") return new Response("", { status: 404 });
      if (req.method === "POST" && url.pathname.endsWith("/uploads/"))
        return new Response("", { status: 202, headers: { location: `${elsewhere.origin}/upload/1` } });
      return new Response("", { status: 400 });
    });
    const c = new RegistryClient(registry.host, { credentials: SECRET, retries: 0 });
    async function* body() {
      yield new Uint8Array(1000);
    }
    await c.pushBlobStream("app", body(), 400);
    expect(elsewhere.seen.map((r) => r.method)).toEqual(["PATCH", "PATCH", "PATCH", "PUT"]);
    expect(elsewhere.seen.every((r) => r.auth === null)).toBe(true);
  });

  test("https registry: an http token realm and a redirect to http are refused; nothing is sent in clear", async () => {
    const dir = cleanup.tempDir("rafsnap-hostile-pki-");
    const pki = makePki(dir);
    const tls = { cert: readFileSync(pki.serverCert, "utf8"), key: readFileSync(pki.serverKey, "utf8") };
    const clear = serve(() => Response.json({ token: "t" }));
    const registry = serve((_req, url) => {
      if (url.pathname.includes("/manifests/"))
        return new Response("", { status: 401, headers: { "www-authenticate": `Bearer realm="${clear.origin}/token"` } });
      return Response.redirect(`${clear.origin}${url.pathname}`, 302);
    }, tls);
    const c = new RegistryClient(registry.host, { plainHttp: false, caCert: readFileSync(pki.caCert, "utf8"), credentials: SECRET, retries: 0 });
    const realm = await failure(c.getManifest("app", "latest"));
    expect(realm.kind).toBe(ErrorKind.PermissionDenied);
    expect(realm.message).toContain("only over https");
    const redirect = await failure(c.readRange("app", DIGEST, 0, 10));
    expect(redirect.kind).toBe(ErrorKind.PermissionDenied);
    expect(redirect.message).toContain("never from https to http");
    expect(clear.seen).toEqual([]);
  });

  test("a mirror gets neither the origin's credentials nor its registry_token unless auth_through; its headers stay with it", async () => {
    const origin = serve((req) =>
      req.headers.get("authorization")
        ? new Response(new Uint8Array(10), { status: 206, headers: { "content-range": "bytes 0-9/100" } })
        : new Response("", { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } }),
    );
    const elsewhere = serve(() => new Response("", { status: 404 }));
    const mirror = serve((_req, url) => Response.redirect(`${elsewhere.origin}${url.pathname}`, 307));
    const config = (authThrough: boolean) =>
      parseDaemonConfig(
        JSON.stringify({
          device: {
            backend: {
              type: "registry",
              config: {
                host: origin.host,
                repo: "app",
                scheme: "http",
                auth: Buffer.from(`${SECRET.username}:${SECRET.password}`).toString("base64"),
                registry_token: "origin-token",
                mirrors: [{ host: mirror.origin, headers: { "x-mirror-secret": "m" }, auth_through: authThrough }],
              },
            },
            cache: { type: "blobcache", config: { work_dir: "/tmp" } },
          },
        }),
        "test",
      );
    const b = backendOf(config(false).backend);
    try {
      expect((await b.read(DIGEST.slice(7), 0, 10)).length).toBe(10); // the mirror fails, the origin serves
    } finally {
      b.close?.();
    }
    expect(mirror.seen.length).toBeGreaterThan(0);
    expect(mirror.seen.every((r) => r.auth === null)).toBe(true);
    expect(mirror.seen.every((r) => r.custom === "m")).toBe(true);
    // The mirror's redirect target is another origin: no custom header, no credentials.
    expect(elsewhere.seen.length).toBeGreaterThan(0);
    expect(elsewhere.seen.every((r) => r.auth === null && r.custom === null)).toBe(true);
    mirror.seen.length = 0;
    const through = backendOf(config(true).backend);
    try {
      await through.read(DIGEST.slice(7), 0, 10);
    } finally {
      through.close?.();
    }
    expect(mirror.seen.some((r) => r.auth === "Bearer origin-token")).toBe(true);
  });
});

describe("hostile registries: bounded time and memory", () => {
  test("a manifest trickled one byte at a time fails at the idle limit", async () => {
    const registry = serve(() => new Response(endless(new Uint8Array([0x7b]), 1500), { headers: { "content-type": "application/json" } }));
    const c = new RegistryClient(registry.host, { timeoutMs: 500, retries: 0 });
    const t0 = performance.now();
    const f = await failure(c.getManifest("app", "latest"));
    expect(f.kind).toBe(ErrorKind.DeadlineExceeded);
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  test("an endless manifest, an announced oversized one and an endless token are refused at their caps", async () => {
    const big = new Uint8Array(256 << 10).fill(0x20);
    const endlessReg = serve(() => new Response(endless(big, 1), { headers: { "content-type": "application/json" } }));
    const c = new RegistryClient(endlessReg.host, { retries: 0 });
    const before = process.memoryUsage().rss;
    const f = await failure(c.getManifest("app", "latest"));
    expect(f.kind).toBe(ErrorKind.ResourceExhausted);
    expect(f.message).toContain("4194304");
    expect(process.memoryUsage().rss - before).toBeLessThan(200 << 20);
    // A raw HTTP answer announcing 1 GiB (Bun.serve would correct the header).
    const announced = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(sock) {
          sock.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{");
        },
      },
    });
    cleanup.defer("raw server", () => announced.stop(true));
    const a = await failure(new RegistryClient(`127.0.0.1:${announced.port}`, { retries: 0, timeoutMs: 5_000 }).getManifest("app", "latest"));
    expect(a.kind).toBe(ErrorKind.ResourceExhausted);
    expect(a.message).toContain("announced 1073741824 bytes");
    const tokens = serve(() => new Response(endless(big, 1)));
    const reg = serve(() => new Response("", { status: 401, headers: { "www-authenticate": `Bearer realm="${tokens.origin}/token"` } }));
    const t = await failure(new RegistryClient(reg.host, { retries: 0 }).getManifest("app", "latest"));
    expect(t.kind).toBe(ErrorKind.ResourceExhausted);
  });

  test("a range answered with more bytes, other bytes or a trickle: refused, never taken", async () => {
    const longer = serve(() => new Response(endless(new Uint8Array(1 << 20), 1), { status: 206, headers: { "content-range": "bytes 0-99/1000" } }));
    const l = await failure(new RegistryClient(longer.host, { retries: 0 }).readRange("app", DIGEST, 0, 100));
    expect(l.kind).toBe(ErrorKind.ResourceExhausted);
    const shifted = serve(() => new Response(new Uint8Array(100), { status: 206, headers: { "content-range": "bytes 100-199/1000" } }));
    const s = await failure(new RegistryClient(shifted.host, { retries: 0 }).readRange("app", DIGEST, 0, 100));
    expect(s.kind).toBe(ErrorKind.DataLoss);
    const slow = serve(() => new Response(endless(new Uint8Array(1), 2000), { status: 206, headers: { "content-range": "bytes 0-99/1000" } }));
    const t0 = performance.now();
    const w = await failure(new RegistryClient(slow.host, { retries: 1, timeoutMs: 300 }).readRange("app", DIGEST, 0, 100));
    expect(w.kind).toBe(ErrorKind.Unavailable);
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  test("digests that would become other URLs are refused before any request", async () => {
    const registry = serve(() => new Response("{}"));
    const c = new RegistryClient(registry.host, { retries: 0 });
    for (const bad of ["../../../../v2/x/manifests/latest", "sha256:../../x", `sha512:${"a".repeat(128)}`, `sha256:${"A".repeat(64)}`]) {
      expect((await failure(c.readBlob("app", bad))).kind).toBe(ErrorKind.InvalidArgument);
      expect((await failure(c.readRange("app", bad, 0, 1))).kind).toBe(ErrorKind.InvalidArgument);
    }
    expect((await failure(c.getManifest("app", "sha256:../../x"))).kind).toBe(ErrorKind.InvalidArgument);
    expect((await failure(c.getManifest("app", "../latest"))).kind).toBe(ErrorKind.InvalidArgument);
    expect(registry.seen).toEqual([]);
  });
});
