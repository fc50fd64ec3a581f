// Lazy loading, measured at the registry (compiled binary, root): an image with a 48 MiB file
// and a small file is converted, then served by `rafsnap nydusd` from the registry through a
// counting proxy. Reading the small file must fetch a small fraction of the image; reading the
// big one fetches the rest; a second daemon on the same cache fetches nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup, mountsUnder } from "../harness/cleanup.ts";
import { noise, pushDirImage } from "../harness/oci-image.ts";
import { type FlakyProxy, startFlakyProxy } from "../harness/flaky-proxy.ts";
import { run, waitFor } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { registryConfig, startNydusd } from "../support/nydusd.ts";
import { rafsnapCli } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
const BIG = 48 << 20;

describe.skipIf(!isRoot)("lazy loading from the registry", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let proxy: FlakyProxy;
  let boot = "";
  let bigSha = "";

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-lazy-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    proxy = startFlakyProxy(reg.url);
    cleanup.defer("proxy", () => proxy.stop());
    const tree = join(dir, "tree");
    mkdirSync(tree);
    const big = noise(BIG);
    bigSha = new Bun.CryptoHasher("sha256").update(big).digest("hex");
    writeFileSync(join(tree, "big"), big);
    writeFileSync(join(tree, "small.txt"), "a small file\n");
    const c = new RegistryClient(reg.host);
    await pushDirImage(c, "lazy", "oci", tree, join(dir, "layer"));
    const conv = await rafsnapCli(["convert", "--source", `${reg.host}/lazy:oci`, "--target", `${reg.host}/lazy:nydus`]);
    expect(conv.code).toBe(0);
    const m = (await c.getManifest("lazy", "nydus")).bytes;
    const layers = (JSON.parse(new TextDecoder().decode(m)) as { layers: { digest: string }[] }).layers;
    writeFileSync(join(dir, "boot.tgz"), await c.readBlob("lazy", layers.at(-1)?.digest as string));
    expect((await run(["tar", "-xzf", join(dir, "boot.tgz"), "-C", dir])).code).toBe(0);
    boot = join(dir, "image/image.boot");
  }, 120_000);
  afterAll(() => cleanup.run());

  async function daemon(name: string, opts: { cache?: string; prefetch?: object; args?: string[] } = {}) {
    const extra = opts.prefetch ? { fs_prefetch: opts.prefetch } : {};
    const nd = await startNydusd(dir, name, registryConfig(proxy.host, "lazy", join(dir, opts.cache ?? "cache"), extra), {
      bootstrap: boot,
      args: opts.args,
      onStart: (p) => cleanup.add(name, p),
    });
    const blobcache = async () =>
      (await (await nd.api("GET", "/api/v1/metrics/blobcache")).json()) as { data_all_ready: boolean; prefetch_data_amount: number };
    return { d: nd.proc, mnt: nd.mnt, blobcache };
  }

  test("a small read fetches a small fraction; the big file the rest; a restart nothing", async () => {
    const first = await daemon("first");
    proxy.resetCounters();
    expect((await run(["cat", join(first.mnt, "small.txt")])).stdout).toBe("a small file\n");
    const small = proxy.blobBytes();
    console.log(`lazy: reading small.txt fetched ${small} bytes of the ${BIG}-byte file`);
    expect(small).toBeGreaterThan(0);
    expect(small).toBeLessThan(4 << 20); // at most a few chunks of the 48 MiB blob
    expect((await run(["sha256sum", join(first.mnt, "big")])).stdout.split(" ")[0]).toBe(bigSha);
    expect(proxy.blobBytes()).toBeGreaterThan(BIG);
    expect(await first.d.stop()).toBe(0);

    proxy.resetCounters();
    const second = await daemon("second");
    expect((await run(["sha256sum", join(second.mnt, "big")])).stdout.split(" ")[0]).toBe(bigSha);
    expect(proxy.blobBytes()).toBe(0);
    expect(await second.d.stop()).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
  }, 120_000);

  test("fs_prefetch.prefetch_all fetches the whole image in the background; --prefetch-files first", async () => {
    const list = join(dir, "prefetch.list");
    writeFileSync(list, "/small.txt\n");
    proxy.resetCounters();
    const p = await daemon("prefetch", {
      cache: "cache-prefetch",
      prefetch: { enable: true, prefetch_all: true, threads_count: 2 },
      args: ["--prefetch-files", list],
    });
    await waitFor(
      "all data prefetched",
      async () => (await p.blobcache()).data_all_ready,
      60_000,
      () => !p.d.hasExited(),
    );
    expect(proxy.blobBytes()).toBeGreaterThan(BIG); // without a single read
    expect((await p.blobcache()).prefetch_data_amount).toBeGreaterThan(BIG);
    proxy.resetCounters();
    expect((await run(["sha256sum", join(p.mnt, "big")])).stdout.split(" ")[0]).toBe(bigSha);
    expect(proxy.blobBytes()).toBe(0);
    expect(await p.d.stop()).toBe(0);
  }, 120_000);

  test("fs_prefetch.bandwidth_rate bounds what prefetch fetches per second", async () => {
    const rate = 4 << 20;
    proxy.resetCounters();
    const t0 = performance.now();
    const p = await daemon("prefetch-rate", {
      cache: "cache-prefetch-rate",
      prefetch: { enable: true, prefetch_all: true, threads_count: 4, bandwidth_rate: rate },
    });
    await Bun.sleep(2_000);
    const secs = (performance.now() - t0) / 1000;
    const fetched = proxy.blobBytes();
    // One second's worth of burst, then the rate (plus the request in flight, ≤ amplify_io),
    // and the bootstrap's CI tables; without the limit the whole 48 MiB arrives in this time.
    expect(fetched).toBeLessThan(rate * (secs + 1) + (2 << 20));
    expect(fetched).toBeGreaterThan(rate / 2); // it does prefetch
    expect((await p.blobcache()).data_all_ready).toBe(false);
    expect(await p.d.stop()).toBe(0);
  }, 120_000);
});
