// The learned startup working set, end to end (compiled binary, root): a daemon records which
// files are read first, `rafsnap prefetch-list` exports them in that order, `rafsnap convert
// --prefetch-files` lays them out first, and a daemon with fs_prefetch fetches them at mount
// in few large requests — counted at a proxy in front of the registry — before they are read.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { openBootstrapBytes } from "../../src/rafs/index.ts";
import { Cleanup, mountsUnder } from "../harness/cleanup.ts";
import { noise, pushDirImage } from "../harness/oci-image.ts";
import { type FlakyProxy, startFlakyProxy } from "../harness/flaky-proxy.ts";
import { run, waitFor } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { registryConfig, startNydusd } from "../support/nydusd.ts";
import { prepareNydusImage, serveNydus, viewNydusImage } from "../support/nydus-unpack.ts";
import { rafsnapCli } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
const FILE = 200 << 10;
const FILES = 40;
/** The "startup" reads, in this order (spread over the tar order on purpose). */
const STARTUP = ["/f30", "/lib/f05", "/lib/f17", "/f12"];

describe.skipIf(!isRoot)("learned prefetch list", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let proxy: FlakyProxy;
  let c: RegistryClient;

  async function bootstrapOf(tag: string, name: string): Promise<string> {
    const m = (await c.getManifest("app", tag)).bytes;
    const layers = (JSON.parse(new TextDecoder().decode(m)) as { layers: { digest: string }[] }).layers;
    const out = join(dir, name);
    mkdirSync(out);
    writeFileSync(join(out, "boot.tgz"), await c.readBlob("app", layers.at(-1)?.digest as string));
    expect((await run(["tar", "-xzf", join(out, "boot.tgz"), "-C", out])).code).toBe(0);
    return join(out, "image/image.boot");
  }

  const blobGets = () => proxy.seen().filter((s) => s.startsWith("GET") && s.includes("/blobs/")).length;

  async function daemon(name: string, boot: string, prefetch?: object) {
    const nd = await startNydusd(dir, name, registryConfig(proxy.host, "app", join(dir, `cache-${name}`), prefetch ? { fs_prefetch: prefetch } : {}), {
      bootstrap: boot,
      onStart: (p) => cleanup.add(name, p),
    });
    const blobcache = async () =>
      (await (await nd.api("GET", "/api/v1/metrics/blobcache")).json()) as { prefetch_data_amount: number; prefetch_requests_count: number };
    return { ...nd, blobcache };
  }

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-prefetch-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    proxy = startFlakyProxy(reg.url);
    cleanup.defer("proxy", () => proxy.stop());
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "lib"), { recursive: true });
    for (let i = 0; i < FILES; i++) {
      const name = i % 2 === 0 ? `f${String(i).padStart(2, "0")}` : `lib/f${String(i).padStart(2, "0")}`;
      writeFileSync(join(tree, name), noise(FILE, i + 1));
    }
    c = new RegistryClient(reg.host);
    await pushDirImage(c, "app", "oci", tree, join(dir, "layer"));
    expect((await rafsnapCli(["convert", "--source", `${reg.host}/app:oci`, "--target", `${reg.host}/app:nydus`])).code).toBe(0);
  }, 120_000);
  afterAll(() => cleanup.run());

  test("record → prefetch-list → convert --prefetch-files → few large fetches at mount", async () => {
    // 1. Record: read the startup files; the daemon exports them in first-read order.
    const plainBoot = await bootstrapOf("nydus", "plain");
    const rec = await daemon("record", plainBoot);
    proxy.resetCounters();
    let before = blobGets();
    for (const f of STARTUP) expect((await run(["cat", join(rec.mnt, f)])).code).toBe(0);
    const coldRequests = blobGets() - before;
    const coldBytes = proxy.blobBytes();
    const listed = await rafsnapCli(["prefetch-list", "--apisock", rec.sock]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split("\n")).toEqual(STARTUP);
    expect(await rec.proc.stop()).toBe(0);

    // 2. Convert with the list: the prefetch table names those files, in that order.
    const list = join(dir, "startup.list");
    writeFileSync(list, listed.stdout);
    const conv = await rafsnapCli(["convert", "--source", `${reg.host}/app:oci`, "--target", `${reg.host}/app:learned`, "--prefetch-files", list]);
    expect(conv.code).toBe(0);
    const learnedBoot = await bootstrapOf("learned", "learned");
    const img = openBootstrapBytes(new Uint8Array(readFileSync(learnedBoot)), learnedBoot);
    expect(img.prefetch).toEqual(STARTUP.map((p) => img.lookup(p).nid));

    // 3. Mount with prefetch: the working set arrives in few requests, before any read.
    proxy.resetCounters();
    before = blobGets();
    const warm = await daemon("warm", learnedBoot, { enable: true, threads_count: 2, merging_size: 8 << 20 });
    await waitFor(
      "working set prefetched",
      async () => (await warm.blobcache()).prefetch_data_amount >= STARTUP.length * FILE,
      30_000,
      () => !warm.proc.hasExited(),
    );
    const prefetchRequests = blobGets() - before;
    const prefetchBytes = proxy.blobBytes();
    console.log(
      `prefetch: cold reads of ${STARTUP.length} files took ${coldRequests} blob requests (${coldBytes} bytes); with the learned list the mount fetched them in ${prefetchRequests} (${prefetchBytes} bytes)`,
    );
    expect(prefetchRequests).toBeLessThanOrEqual(2);
    expect(prefetchRequests).toBeLessThan(coldRequests);
    expect(prefetchBytes).toBeLessThan(STARTUP.length * FILE + (1 << 20));
    before = blobGets();
    for (const f of STARTUP) expect((await run(["cat", join(warm.mnt, f)])).code).toBe(0);
    // The reads found their data cached; reading the working set in blob order is sequential,
    // so read-ahead may fetch what follows it (one request), nothing more.
    expect(blobGets() - before).toBeLessThanOrEqual(1);
    expect(await warm.proc.stop()).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
  }, 120_000);
});

describe.skipIf(!isRoot)("learned prefetch list of an image rafsnap serve runs", () => {
  const cleanup = new Cleanup();
  afterAll(() => cleanup.run());

  test("prefetch-list --image REF --root R asks the image's daemon, found in rafsnap's database", async () => {
    const dir = cleanup.tempDir("rafsnap-prefetch-image-");
    const reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const img = await prepareNydusImage(dir, reg);
    const s = await serveNydus(cleanup, dir, "shared", 'daemon_mode = "shared"');
    const { lower } = await viewNydusImage(s.client, img, "p");
    expect(readFileSync(join(lower, "data/hello"), "utf8").length).toBeGreaterThan(0);
    const listed = await rafsnapCli(["prefetch-list", "--image", img.image, "--root", s.root]);
    expect(listed.stderr).not.toContain("rror");
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n")).toContain("/data/hello");
    const unknown = await rafsnapCli(["prefetch-list", "--image", "registry.test/none:1", "--root", s.root]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain(`no RAFS instance of image "registry.test/none:1"`);
    expect(unknown.stderr).toContain(img.image); // the images that are mounted
  }, 180_000);
});
