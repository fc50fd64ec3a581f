// Faults in the data path (compiled binary, root): a chunk corrupted in the registry's own
// storage is caught by digest_validate — the read fails with EIO, the daemon logs the blob,
// other files keep working, nothing wrong is ever returned, and the kernel logs no oops.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, openSync, readFileSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup, mountsUnder } from "../harness/cleanup.ts";
import { noise, pushDirImage } from "../harness/oci-image.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { registryConfig, startNydusd } from "../support/nydusd.ts";
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
    const blobId = (m.layers[0]?.digest as string).slice(7);
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
    expect(metrics.fop_errors[0]).toBeGreaterThan(0);
    expect(await d.stop()).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
    const dmesgNew = (await run(["dmesg"])).stdout.split("\n").slice(dmesgBefore - 1).join("\n");
    expect(dmesgNew).not.toMatch(/BUG|Oops|general protection|Call Trace/);
  }, 120_000);
});
