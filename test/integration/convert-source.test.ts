// The converter's source side against a real registry: the images of test/images pushed by
// skopeo, a single manifest and an index with two platforms.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { MediaType, resolveImage } from "../../src/convert/index.ts";
import { ErrorKind, kindOf } from "../../src/errdefs/index.ts";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { BUILD_IMAGES, chainIds } from "../harness/images.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";

const cleanup = new Cleanup();
let reg: Registry;
let dir: string;
beforeAll(async () => {
  dir = cleanup.tempDir("rafsnap-convert-src-");
  reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
  const b = await run(["bash", BUILD_IMAGES, join(dir, "img"), reg.host], { timeoutMs: 60_000 });
  expect(b.code).toBe(0);
}, 90_000);
afterAll(() => cleanup.run());

test("a single-manifest image: manifest, config and diff_ids", async () => {
  const c = new RegistryClient(reg.host);
  const img = await resolveImage(c, "multi", "v1", { os: "linux", architecture: "amd64" });
  expect(img.manifestDescriptor.mediaType).toBe(MediaType.OciManifest);
  expect(img.manifest.layers).toHaveLength(3);
  expect(img.config.rootfs.diff_ids).toHaveLength(3);
  expect(chainIds(join(dir, "img/multi"))[0]).toBe(img.config.rootfs.diff_ids[0]);
  expect(img.index).toBeUndefined();
});

test("an index: the platform's manifest is picked; a missing platform is NotFound naming what exists", async () => {
  const c = new RegistryClient(reg.host);
  const one = await c.getManifest("multi", "v1");
  const enc = new TextEncoder();
  const index = enc.encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        { mediaType: MediaType.OciManifest, digest: one.digest, size: one.bytes.length, platform: { os: "linux", architecture: "arm64" } },
        { mediaType: MediaType.OciManifest, digest: one.digest, size: one.bytes.length, platform: { os: "linux", architecture: "amd64" } },
      ],
    }),
  );
  await c.putManifest("multi", "idx", MediaType.OciIndex, index);
  const img = await resolveImage(c, "multi", "idx", { os: "linux", architecture: "arm64" });
  expect(img.index?.index.manifests).toHaveLength(2);
  expect(img.manifestDescriptor.digest).toBe(one.digest);
  let err: unknown;
  try {
    await resolveImage(c, "multi", "idx", { os: "linux", architecture: "s390x" });
  } catch (e) {
    err = e;
  }
  expect(kindOf(err)).toBe(ErrorKind.NotFound);
  expect(String(err)).toContain("linux/arm64, linux/amd64");
});
