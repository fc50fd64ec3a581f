// Faults in the data path (compiled binary, root): a chunk corrupted in the registry's own
// storage is caught by digest_validate — the read fails with EIO, the daemon logs the blob,
// other files keep working, nothing wrong is ever returned, and the kernel logs no oops. A
// registry answering 5xx, slowly, or cutting connections is retried (reads come back right);
// one that keeps failing gives EIO, and reads work again once it recovers; one that trickles
// its body fails at the backend's idle limit instead of hanging the reader.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, openSync, readFileSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup, mountsUnder } from "../harness/cleanup.ts";
import { type FlakyProxy, startFlakyProxy } from "../harness/flaky-proxy.ts";
import { noise, pushDirImage } from "../harness/oci-image.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { convertAndFetchBootstrap, registryConfig, startNydusd } from "../support/nydusd.ts";
import { rafsnapCli } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("data-path faults", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-faults-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
  }, 60_000);
  afterAll(() => cleanup.run());

  test("a corrupted chunk in the registry: EIO naming the blob, other files fine, no kernel oops", async () => {
    const tree = join(dir, "tree");
    mkdirSync(tree);
    writeFileSync(join(tree, "big"), noise(3 << 20)); // several 1 MiB chunks, stored raw (incompressible)
    writeFileSync(join(tree, "small.txt"), "still fine\n");
    const c = new RegistryClient(reg.host);
    await pushDirImage(c, "faults", "oci", tree, join(dir, "layer"));
    expect((await rafsnapCli(["convert", "--source", `${reg.host}/faults:oci`, "--target", `${reg.host}/faults:nydus`])).code).toBe(0);
    const m = JSON.parse(new TextDecoder().decode((await c.getManifest("faults", "nydus")).bytes)) as { layers: { digest: string }[] };
    const blobId = (m.layers[0]?.digest ?? "").slice(7);
    writeFileSync(join(dir, "boot.tgz"), await c.readBlob("faults", m.layers[1]?.digest as string));
    expect((await run(["tar", "-xzf", join(dir, "boot.tgz"), "-C", dir])).code).toBe(0);

    // Flip bytes inside the big file's first chunk, in the registry's storage (the registry
    // serves stored bytes without re-checking them).
    const data = join(dir, "registry/storage/docker/registry/v2/blobs/sha256", blobId.slice(0, 2), blobId, "data");
    const fd = openSync(data, "r+");
    writeSync(fd, new Uint8Array(64).fill(0xa5), 0, 64, 4096);
    closeSync(fd);

    const dmesgBefore = (await run(["dmesg"])).stdout.split("\n").length;
    const nd = await startNydusd(dir, "nydusd", registryConfig(reg.host, "faults", join(dir, "cache")), {
      bootstrap: join(dir, "image/image.boot"),
      onStart: (p) => cleanup.add("nydusd", p),
    });
    const { mnt } = nd;
    const d = nd.proc;
    const bad = await run(["cat", join(mnt, "big")]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("Input/output error");
    expect(bad.stdout.length).toBeLessThan(1 << 20); // nothing past the corrupted chunk came back
    expect((await run(["cat", join(mnt, "small.txt")])).stdout).toBe("still fine\n");
    const log = readFileSync(join(dir, "nydusd.log"), "utf8");
    expect(log).toContain(`blob ${blobId}`);
    expect(log).toContain("digest mismatch");
    const metrics = (await (await nd.api("GET", "/api/v1/metrics")).json()) as { fop_errors: number[] };
    expect(metrics.fop_errors[4]).toBeGreaterThan(0); // nydusd's layout: index 4 is read
    expect(await d.stop()).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
    const dmesgNew = (await run(["dmesg"])).stdout
      .split("\n")
      .slice(dmesgBefore - 1)
      .join("\n");
    expect(dmesgNew).not.toMatch(/BUG|Oops|general protection|Call Trace/);
  }, 120_000);

  test("registry 5xx, slow answers and cut connections: retried and read right; a registry that keeps failing gives EIO", async () => {
    const tree = join(dir, "tree2");
    mkdirSync(tree);
    const files = [noise(2 << 20, 21), noise(2 << 20, 22), noise(2 << 20, 23)];
    files.forEach((f, i) => writeFileSync(join(tree, `f${i}`), f));
    // `m` (never read, larger than the read-ahead) keeps `z` out of reach of earlier reads.
    writeFileSync(join(tree, "m"), noise(12 << 20, 25));
    const z = noise(2 << 20, 24);
    writeFileSync(join(tree, "z"), z);
    const c = new RegistryClient(reg.host);
    await pushDirImage(c, "net", "oci", tree, join(dir, "layer2"));
    mkdirSync(join(dir, "net"));
    const { boot } = await convertAndFetchBootstrap(c, "net", "oci", "nydus", join(dir, "net"));
    const proxy: FlakyProxy = startFlakyProxy(reg.url);
    cleanup.defer("proxy", () => proxy.stop());
    const cfg = {
      device: {
        backend: { type: "registry", config: { host: proxy.host, repo: "net", scheme: "http", retry_limit: 3, timeout: 1 } },
        cache: { type: "blobcache", config: { work_dir: join(dir, "net-cache") } },
      },
      digest_validate: true,
    };
    const nd = await startNydusd(join(dir, "net"), "nydusd", cfg, { bootstrap: boot, onStart: (p) => cleanup.add("nydusd net", p) });
    const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
    const read = (i: number) => run(["sha256sum", join(nd.mnt, `f${i}`)]);
    proxy.fail500(2);
    expect((await read(0)).stdout.split(" ")[0]).toBe(sha(files[0] as Uint8Array));
    proxy.slowBlobs(1, 2500); // longer than the 1 s timeout: the first attempt is abandoned
    expect((await read(1)).stdout.split(" ")[0]).toBe(sha(files[1] as Uint8Array));
    proxy.cutBlobs(2);
    expect((await read(2)).stdout.split(" ")[0]).toBe(sha(files[2] as Uint8Array));
    proxy.fail500(1000);
    const failed = await run(["cat", join(nd.mnt, "z")]);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain("Input/output error");
    proxy.fail500(0);
    expect((await run(["sha256sum", join(nd.mnt, "z")])).stdout.split(" ")[0]).toBe(sha(z)); // and it recovers
    // A registry that answers at once and then trickles one byte every 2 s: each attempt is
    // abandoned at the 1 s idle limit (`timeout`), the read gets EIO instead of hanging, and
    // SIGTERM still stops the daemon.
    proxy.trickleBlobs(1000, 2000);
    const trickled = await run(["cat", join(nd.mnt, "m")], { timeoutMs: 60_000 });
    expect(trickled.timedOut).toBe(false);
    expect(trickled.code).not.toBe(0);
    expect(trickled.stderr).toContain("Input/output error");
    expect(readFileSync(join(dir, "net", "nydusd.log"), "utf8")).toContain("no data for 1000 ms");
    expect(await nd.proc.stop()).toBe(0);
    proxy.trickleBlobs(0, 0);
  }, 120_000);
});
