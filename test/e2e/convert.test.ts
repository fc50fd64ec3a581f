// `rafsnap convert` end to end (compiled binary, root): the multi-layer test image is
// converted in a real registry; the result has nydus's media types and annotations, passes
// `rafsnap check` with its blobs, and `rafsnap nydusd` serves it lazily from the registry so
// that the merged tree (whiteout, opaque dir, symlink, hard link, setuid) is right.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cleanup, mountsUnder } from "../harness/cleanup.ts";
import { BUILD_IMAGES, HELLO, mergedTreeScript } from "../harness/images.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { registryConfig, startNydusd } from "../support/nydusd.ts";
import { rafsnapCli } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
const NYDUS_BLOB = "application/vnd.oci.image.layer.nydus.blob.v1";
type Manifest = {
  mediaType: string;
  config: { digest: string };
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
};

describe.skipIf(!isRoot)("rafsnap convert", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  const get = async (path: string, accept?: string) => fetch(`${reg.url}${path}`, { headers: accept ? { accept } : {} });

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-convert-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const b = await run(["bash", BUILD_IMAGES, join(dir, "img"), reg.host], { timeoutMs: 60_000 });
    expect(b.code).toBe(0);
  }, 90_000);
  afterAll(() => cleanup.run());

  test("converts, pushes the tag last, and the image has nydus's layout", async () => {
    const r = await rafsnapCli(["convert", "--source", `${reg.host}/multi:v1`, "--target", `${reg.host}/multi:v1-nydus`]);
    expect(r.stderr).toContain("layer 3/3");
    expect(r.code).toBe(0);
    const digest = r.stdout.trim();
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const res = await get("/v2/multi/manifests/v1-nydus", "application/vnd.oci.image.manifest.v1+json");
    expect(res.headers.get("docker-content-digest")).toBe(digest);
    const m = (await res.json()) as Manifest;
    expect(m.layers.map((l) => l.mediaType)).toEqual([NYDUS_BLOB, NYDUS_BLOB, NYDUS_BLOB, "application/vnd.oci.image.layer.v1.tar+gzip"]);
    expect(m.layers[0]?.annotations?.["containerd.io/snapshot/nydus-blob"]).toBe("true");
    expect(m.layers[3]?.annotations?.["containerd.io/snapshot/nydus-bootstrap"]).toBe("true");
    const config = (await (await get(`/v2/multi/blobs/${m.config.digest}`)).json()) as { rootfs: { diff_ids: string[] } };
    expect(config.rootfs.diff_ids.slice(0, 3)).toEqual(m.layers.slice(0, 3).map((l) => l.digest));

    // rafsnap check with the blobs (named by blob id = layer digest hex)
    const blobs = join(dir, "blobs");
    mkdirSync(blobs);
    for (const l of m.layers.slice(0, 3))
      writeFileSync(join(blobs, l.digest.slice(7)), new Uint8Array(await (await get(`/v2/multi/blobs/${l.digest}`)).arrayBuffer()));
    const bootTgz = join(dir, "boot.tgz");
    writeFileSync(bootTgz, new Uint8Array(await (await get(`/v2/multi/blobs/${m.layers[3]?.digest}`)).arrayBuffer()));
    expect((await run(["tar", "-xzf", bootTgz, "-C", dir])).code).toBe(0);
    const check = await rafsnapCli(["check", join(dir, "image/image.boot"), "--blobs", blobs]);
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);

    // served lazily from the registry by rafsnap nydusd, read as a root filesystem
    const nd = await startNydusd(dir, "nydusd", registryConfig(reg.host, "multi", join(dir, "cache")), {
      bootstrap: join(dir, "image/image.boot"),
      onStart: (p) => cleanup.add("nydusd", p),
    });
    const d = nd.proc;
    const mnt = nd.mnt;
    const tree = await run(["chroot", mnt, "/bin/sh", "-c", mergedTreeScript("CONVERTED-OK")]);
    if (tree.code !== 0) console.error(tree.stderr, d.logTail());
    expect(tree.stdout).toBe(`${HELLO}\nCONVERTED-OK\n`);
    expect((await run(["getfattr", "--only-values", "-n", "user.rafsnap", join(mnt, "data/xattr")])).stdout).toBe("yes");
    expect(await d.stop()).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
  }, 120_000);

  test("--merge-platform pushes an index with both manifests; the nydus one carries the artifactType", async () => {
    const r = await rafsnapCli([
      "convert",
      "--source",
      `${reg.host}/multi:v1`,
      "--target",
      `${reg.host}/multi:v1-merged`,
      "--merge-platform",
      "--platform",
      "linux/amd64",
    ]);
    expect(r.code).toBe(0);
    const idx = (await (await get("/v2/multi/manifests/v1-merged", "application/vnd.oci.image.index.v1+json")).json()) as {
      mediaType: string;
      manifests: { digest: string; artifactType?: string; platform?: { os: string; architecture: string } }[];
    };
    expect(idx.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(idx.manifests).toHaveLength(2);
    expect(idx.manifests[1]?.artifactType).toBe("application/vnd.nydus.image.manifest.v1+json");
    expect(idx.manifests[1]?.platform).toEqual({ os: "linux", architecture: "amd64" });
    const oci = await get(`/v2/multi/manifests/${idx.manifests[0]?.digest}`, "application/vnd.oci.image.manifest.v1+json");
    expect(oci.status).toBe(200);
  }, 120_000);

  test("a missing source fails with NotFound naming it and pushes no tag", async () => {
    const r = await rafsnapCli(["convert", "--source", `${reg.host}/multi:nope`, "--target", `${reg.host}/multi:nope-nydus`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("multi:nope");
    expect((await get("/v2/multi/manifests/nope-nydus", "application/vnd.oci.image.manifest.v1+json")).status).toBe(404);
  });
});
