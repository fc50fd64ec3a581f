import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootstrapLayer, mergedIndex, NydusAnnotation, nydusImage } from "./nydus-image.ts";
import { MediaType, type ResolvedImage } from "./oci.ts";

const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
const decode = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));

function source(docker = false): ResolvedImage {
  return {
    manifest: { schemaVersion: 2, config: { mediaType: MediaType.OciConfig, digest: "sha256:c", size: 1 }, layers: [] },
    manifestDescriptor: { mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest, digest: "sha256:m", size: 10 },
    config: {
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: ["sha256:a", "sha256:b"] },
      history: [{ created_by: "x" }],
      config: { Cmd: ["/bin/sh"] },
    },
  };
}

describe("nydus image documents", () => {
  const boot = bootstrapLayer(new Uint8Array(20480).fill(3));

  test("bootstrap layer: gzip tar with image/ (0755) and image/image.boot (0444), reproducible", () => {
    const dir = mkdtempSync(join(tmpdir(), "rafsnap-bootlayer-"));
    try {
      writeFileSync(join(dir, "l.tgz"), boot.bytes);
      expect(Bun.spawnSync(["tar", "-xzf", join(dir, "l.tgz"), "-C", dir]).exitCode).toBe(0);
      expect(statSync(join(dir, "image")).mode & 0o777).toBe(0o755);
      expect(statSync(join(dir, "image/image.boot")).mode & 0o777).toBe(0o444);
      expect(readFileSync(join(dir, "image/image.boot")).equals(Buffer.alloc(20480, 3))).toBe(true);
      expect(boot.digest).toBe(sha(boot.bytes));
      expect(boot.diffId).toBe(sha(Bun.gunzipSync(new Uint8Array(boot.bytes))));
      expect(bootstrapLayer(new Uint8Array(20480).fill(3)).digest).toBe(boot.digest);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("manifest and config: nydus blob layers, then the bootstrap layer, diff_ids and history", () => {
    const blobs = [
      { digest: "sha256:n1", size: 11 },
      { digest: "sha256:n2", size: 22 },
    ];
    const { config, manifest } = nydusImage(source(), blobs, boot, { inIndex: false });
    const m = decode(manifest.bytes);
    expect(m.mediaType).toBe(MediaType.OciManifest);
    expect(m.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([MediaType.NydusBlob, MediaType.NydusBlob, MediaType.OciLayerGzip]);
    expect(m.layers[0].annotations).toEqual({ [NydusAnnotation.Blob]: "true" });
    expect(m.layers[2].annotations).toEqual({ [NydusAnnotation.Bootstrap]: "true", [NydusAnnotation.FsVersion]: "6" });
    expect(m.config).toEqual(config.descriptor);
    expect(config.descriptor.mediaType).toBe(MediaType.OciConfig);
    const c = decode(config.bytes);
    expect(c.rootfs.diff_ids).toEqual(["sha256:n1", "sha256:n2", boot.diffId]);
    expect(c.history.at(-1)).toEqual({ created_by: "Nydus Converter", comment: "Nydus Bootstrap Layer" });
    expect(c.config).toEqual({ Cmd: ["/bin/sh"] });
    expect(manifest.descriptor.digest).toBe(sha(manifest.bytes));
    const docker = decode(nydusImage(source(true), blobs, boot, { inIndex: false }).manifest.bytes);
    expect(docker.mediaType).toBe(MediaType.DockerManifest);
    expect(docker.layers[2].mediaType).toBe(MediaType.DockerLayerGzip);
  });

  test("merged index: source manifest plus the nydus manifest with artifactType", () => {
    const { manifest } = nydusImage(source(), [], boot, { inIndex: true });
    const idx = decode(mergedIndex(source(), manifest.descriptor, { os: "linux", architecture: "amd64" }).bytes);
    expect(idx.mediaType).toBe(MediaType.OciIndex);
    expect(idx.manifests).toHaveLength(2);
    expect(idx.manifests[0].digest).toBe("sha256:m");
    expect(idx.manifests[1]).toMatchObject({
      digest: manifest.descriptor.digest,
      artifactType: MediaType.NydusArtifact,
      platform: { os: "linux", architecture: "amd64" },
    });
    expect(decode(nydusImage(source(), [], boot, { inIndex: true }).config.bytes).rootfs.diff_ids).toEqual([boot.diffId]);
    expect(nydusImage(source(), [], boot, { inIndex: true }).config.descriptor.mediaType).toBe(MediaType.NydusConfig);
  });
});
