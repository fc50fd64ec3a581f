// `ping_url` health checks of the nydusd registry backend's mirrors and proxy (docs/compat.md
// §4.5), against real endpoints on 127.0.0.1: a docker-registry holding a blob, and a mirror
// (a tiny Bun.serve forwarding /v2 to the registry) whose ping URL answers what the test says.
// While the ping fails, reads never reach the mirror; once it answers 200 they do; after
// close() nothing pings any more. The backend is built from a parsed fusedev config, as the
// daemon builds it (needs docker-registry, not root); then the same through `rafsnap nydusd`
// (root: FUSE, EROFS).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { backendFromConfig } from "../../src/nydusd/backend.ts";
import { parseDaemonConfig } from "../../src/nydusd/config.ts";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { noise } from "../harness/oci-image.ts";
import { run, waitFor } from "../harness/process.ts";
import { REGISTRY_BIN, type Registry, startRegistry } from "../harness/registry.ts";
import { pushNydusImage, startNydusd } from "../support/nydusd.ts";

/** A registry mirror on 127.0.0.1 with a switchable health endpoint (`/healthz`). */
interface PingedMirror {
  host: string;
  pingUrl: string;
  /** Status `/healthz` answers from now on. */
  setPing(status: number): void;
  /** Pings received so far. */
  pings(): number;
  /** Blob GETs received so far (what the mirror served). */
  blobGets(): number;
  stop(): void;
}

/** Starts a mirror forwarding `/v2/…` to `upstream` (`http://127.0.0.1:PORT`); `/healthz` answers 500 at first. */
function startPingedMirror(upstream: string): PingedMirror {
  let status = 500;
  let pings = 0;
  let blobGets = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/healthz") {
        pings++;
        return new Response(status === 200 ? "ok" : "down", { status });
      }
      if (req.method === "GET" && url.pathname.includes("/blobs/")) blobGets++;
      const headers = new Headers(req.headers);
      headers.delete("host");
      const res = await fetch(`${upstream}${url.pathname}${url.search}`, { method: req.method, headers, redirect: "manual" });
      return new Response(res.body, { status: res.status, headers: res.headers });
    },
  });
  return {
    host: `127.0.0.1:${server.port}`,
    pingUrl: `http://127.0.0.1:${server.port}/healthz`,
    setPing: (s) => {
      status = s;
    },
    pings: () => pings,
    blobGets: () => blobGets,
    stop: () => server.stop(true),
  };
}

describe.skipIf(!existsSync(REGISTRY_BIN))("nydusd registry backend: ping_url health checks", () => {
  const cleanup = new Cleanup();
  let reg: Registry;
  const blob = noise(256 << 10, 21);
  const id = new Bun.CryptoHasher("sha256").update(blob).digest("hex");

  beforeAll(async () => {
    const dir = cleanup.tempDir("rafsnap-ping-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    await new RegistryClient(reg.host).pushBlob("app", `sha256:${id}`, blob);
  }, 60_000);
  afterAll(() => cleanup.run());

  const backendFor = (tier: "mirror" | "proxy", m: PingedMirror) => {
    const endpoint =
      tier === "mirror"
        ? { mirrors: [{ host: `http://${m.host}`, ping_url: m.pingUrl, health_check_interval: 0.2 }] }
        : { proxy: { url: `http://${m.host}`, ping_url: m.pingUrl, check_interval: 0.2, fallback: true } };
    const cfg = parseDaemonConfig(
      JSON.stringify({
        device: {
          backend: { type: "registry", config: { host: reg.host, repo: "app", scheme: "http", retry_limit: 0, ...endpoint } },
          cache: { type: "blobcache", config: { work_dir: "/nonexistent" } },
        },
      }),
      `${tier} test`,
    );
    const logs: string[] = [];
    return { backend: backendFromConfig(cfg.backend, (x) => logs.push(x)), logs };
  };
  /** Waits until `n` more pings arrived: the one before the last has been answered and taken in. */
  const morePings = async (m: PingedMirror, n: number) => {
    const want = m.pings() + n;
    await waitFor(`${n} more pings`, () => m.pings() >= want, 10_000);
  };
  const readSome = async (b: { read(id: string, o: number, l: number): Promise<Uint8Array> }) => {
    for (const off of [0, 4096, 100_000, 200_000]) expect(await b.read(id, off, 4096)).toEqual(blob.subarray(off, off + 4096));
  };

  for (const tier of ["mirror", "proxy"] as const) {
    test(`a ${tier} whose ping answers 500 is never read; once it answers 200 it is; close() stops the pings`, async () => {
      const m = cleanup.add(tier, startPingedMirror(reg.url));
      const { backend: b, logs } = backendFor(tier, m);
      try {
        // The first read waits for the first ping, so not even it reaches the endpoint.
        await readSome(b);
        await morePings(m, 3);
        await readSome(b);
        expect(m.blobGets()).toBe(0);
        expect(logs.some((l) => l.includes("fails its ping"))).toBe(true);

        m.setPing(200);
        await morePings(m, 2);
        await readSome(b);
        expect(m.blobGets()).toBe(4);
        expect(logs.some((l) => l.includes("answers its ping again"))).toBe(true);

        m.setPing(500);
        await morePings(m, 2);
        await readSome(b);
        expect(m.blobGets()).toBe(4);
      } finally {
        b.close?.();
      }
      await Bun.sleep(100); // a ping already on the wire when close() aborted it
      const after = m.pings();
      await Bun.sleep(1_000); // five intervals
      expect(m.pings()).toBe(after);
    }, 60_000);
  }
});

describe.skipIf(process.getuid?.() !== 0 || !existsSync(REGISTRY_BIN))("rafsnap nydusd: a mirror failing its ping_url", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let boot = "";
  // f1 keeps f2 beyond the 4 MiB read-ahead of a reader of f0 (incompressible data, blob order).
  const files = [noise(2 << 20, 31), noise(6 << 20, 32), noise(2 << 20, 33)];
  const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-ping-daemon-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    boot = (await pushNydusImage(new RegistryClient(reg.host), "app", dir, Object.fromEntries(files.map((f, i) => [`f${i}`, f])))).boot;
  }, 120_000);
  afterAll(() => cleanup.run());

  test("is never read while its ping answers 500 (mount included); serves once it answers 200; umount stops the pings", async () => {
    const m = cleanup.add("mirror", startPingedMirror(reg.url));
    const cfg = {
      device: {
        backend: {
          type: "registry",
          config: { host: reg.host, repo: "app", scheme: "http", mirrors: [{ host: `http://${m.host}`, ping_url: m.pingUrl, health_check_interval: 0.2 }] },
        },
        cache: { type: "blobcache", config: { work_dir: join(dir, "cache") } },
      },
      digest_validate: true,
    };
    const nd = await startNydusd(dir, "ping", cfg, { bootstrap: boot, onStart: (p) => cleanup.add("nydusd ping", p) });
    const check = async (i: number) => expect((await run(["sha256sum", join(nd.mnt, `f${i}`)])).stdout.split(" ")[0]).toBe(sha(files[i] as Uint8Array));
    await check(0);
    expect(m.pings()).toBeGreaterThan(0);
    expect(m.blobGets()).toBe(0);
    m.setPing(200);
    const want = m.pings() + 2;
    await waitFor("two more pings", () => m.pings() >= want, 10_000);
    await check(2);
    expect(m.blobGets()).toBeGreaterThan(0);
    // Unmounting the instance stops its backend's pings; the daemon keeps running.
    expect((await nd.api("DELETE", "/api/v1/mount?mountpoint=/")).status).toBe(204);
    await Bun.sleep(100);
    const after = m.pings();
    await Bun.sleep(1_000);
    expect(m.pings()).toBe(after);
    expect(await nd.state()).toBe("RUNNING");
    expect(await nd.proc.stop()).toBe(0);
  }, 120_000);
});
