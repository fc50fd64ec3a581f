// `rafsnap nydusd`'s registry backend with `mirrors` and `proxy` (docs/compat.md §4.5), against
// real endpoints on 127.0.0.1: a registry, a counting proxy in front of it (standing in for a
// mirror or a P2P proxy, which serve the same /v2 paths) and a port nobody listens on. Reads
// go to the first working endpoint; a dead mirror is skipped; a proxy answering 500 falls back
// to the origin. Also: EROFS over loop devices (the fallback for kernels without file-backed
// EROFS, forced here). Root only (FUSE, EROFS).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { type FlakyProxy, startFlakyProxy } from "../harness/flaky-proxy.ts";
import { noise } from "../harness/oci-image.ts";
import { freePort, run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { pushNydusImage, startNydusd } from "../support/nydusd.ts";

const isRoot = process.getuid?.() === 0;
const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

describe.skipIf(!isRoot)("nydusd: registry mirrors and proxy; loop-device mounts", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let proxy: FlakyProxy;
  let boot = "";
  let dead = "";
  const files = [noise(2 << 20, 11), noise(2 << 20, 12), noise(2 << 20, 13)];

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-mirrors-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    proxy = startFlakyProxy(reg.url);
    cleanup.defer("proxy", () => proxy.stop());
    dead = `127.0.0.1:${await freePort()}`;
    boot = (await pushNydusImage(new RegistryClient(reg.host), "app", dir, Object.fromEntries(files.map((f, i) => [`f${i}`, f])))).boot;
  }, 120_000);
  afterAll(() => cleanup.run());

  const config = (name: string, backend: object) => ({
    device: {
      backend: { type: "registry", config: { repo: "app", scheme: "http", retry_limit: 0, ...backend } },
      cache: { type: "blobcache", config: { work_dir: join(dir, `cache-${name}`) } },
    },
    digest_validate: true,
  });
  const readAll = async (mnt: string) => {
    for (const [i, f] of files.entries()) expect((await run(["sha256sum", join(mnt, `f${i}`)])).stdout.split(" ")[0]).toBe(sha(f));
  };

  test("origin down: a dead mirror is skipped, the working mirror serves everything", async () => {
    proxy.resetCounters();
    const cfg = config("mirror", {
      host: dead, // the origin itself is unreachable
      mirrors: [{ host: `http://${dead}`, failure_limit: 1 }, { host: `http://${proxy.host}` }],
    });
    // Mounting needs the blob's CI table from the backend, so even mounting proves the failover.
    const nd = await startNydusd(dir, "mirror", cfg, { bootstrap: boot, onStart: (p) => cleanup.add("nydusd mirror", p) });
    await readAll(nd.mnt);
    expect(proxy.blobBytes()).toBeGreaterThan(6 << 20);
    expect(await nd.proc.stop()).toBe(0);
  }, 120_000);

  test("loop devices instead of file-backed EROFS (RAFSNAP_EROFS_LOOP=1): same files, loops gone after stop", async () => {
    const cfg = config("loop", { host: reg.host });
    const nd = await startNydusd(dir, "loop", cfg, { bootstrap: boot, env: { RAFSNAP_EROFS_LOOP: "1" }, onStart: (p) => cleanup.add("nydusd loop", p) });
    const mi =
      readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .find((l) => l.split(" ")[4] === nd.mnt) ?? "";
    expect(mi).toContain(" - erofs /dev/loop");
    await readAll(nd.mnt);
    expect(await nd.proc.stop()).toBe(0);
    const loops = (await run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"])).stdout;
    expect(loops).not.toContain(dir);
  }, 120_000);

  test("proxy with fallback: when it answers 500 the origin serves; without fallback reads fail", async () => {
    const cfg = config("proxy", { host: reg.host, proxy: { url: `http://${proxy.host}`, fallback: true } });
    const nd = await startNydusd(dir, "proxy", cfg, { bootstrap: boot, onStart: (p) => cleanup.add("nydusd proxy", p) });
    proxy.fail500(1000);
    await readAll(nd.mnt);
    expect(await nd.proc.stop()).toBe(0);
    proxy.fail500(0);

    const strictCfg = config("strict", { host: reg.host, proxy: { url: `http://${dead}`, fallback: false } });
    // Without fallback the daemon cannot even read the CI table: it does not come up.
    let err = "";
    await startNydusd(dir, "strict", strictCfg, { bootstrap: boot, onStart: (p) => cleanup.add("nydusd strict", p) }).catch((e) => {
      err = String(e);
    });
    expect(err).toContain(dead);
  }, 120_000);
});
