import { type Descriptor, type ImageConfig, type Index, type Manifest, MediaType, type Platform, type ResolvedImage } from "./oci.ts";
import { Label } from "../labels/index.ts";

/** Annotation keys of nydus images (docs/compat.md §2, docs/rafs.md §19.3); containerd passes them on as snapshot labels. */
export const NydusAnnotation = {
  Blob: Label.NydusDataLayer,
  Bootstrap: Label.NydusMetaLayer,
  FsVersion: Label.NydusFsVersion,
} as const;

/** A nydus data blob pushed for one OCI layer. */
export interface NydusBlobLayer {
  digest: string;
  size: number;
}

/** The bootstrap layer: gzip of a tar holding `image/image.boot`. */
export interface BootstrapLayer {
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar (its diff_id). */
  diffId: string;
  bytes: Uint8Array;
}

/** A serialised JSON document and its descriptor. */
export interface Blob {
  bytes: Uint8Array;
  descriptor: Descriptor;
}

const enc = new TextEncoder();
function blobOf(value: unknown, mediaType: string, extra: Partial<Descriptor> = {}): Blob {
  const bytes = enc.encode(JSON.stringify(value));
  return {
    bytes,
    descriptor: { mediaType, digest: `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`, size: bytes.length, ...extra },
  };
}

function ustarHeader(path: string, mode: number, size: number, type: "0" | "5"): Uint8Array {
  const h = new Uint8Array(512);
  const put = (s: string, off: number) => h.set(enc.encode(s), off);
  const oct = (n: number, len: number) => `${n.toString(8).padStart(len - 1, "0")}\0`;
  put(path, 0);
  put(oct(mode, 8), 100);
  put(oct(0, 8), 108);
  put(oct(0, 8), 116);
  put(oct(size, 12), 124);
  put(oct(0, 12), 136);
  put(type, 156);
  put("ustar\0", 257);
  put("00", 263);
  put("        ", 148);
  put(
    `${oct(
      h.reduce((a, b) => a + b, 0),
      7,
    )} `,
    148,
  );
  return h;
}

/**
 * The bootstrap layer as nydus images carry it: a tar with the directory `image/` (0755) and
 * `image/image.boot` (0444), gzip-compressed. Entries have uid/gid 0 and mtime 0, so the
 * same bootstrap always gives the same layer digest.
 */
export function bootstrapLayer(bootstrap: Uint8Array): BootstrapLayer {
  const pad = (512 - (bootstrap.length % 512)) % 512;
  const tar = Buffer.concat([
    ustarHeader("image/", 0o755, 0, "5"),
    ustarHeader("image/image.boot", 0o444, bootstrap.length, "0"),
    bootstrap,
    new Uint8Array(pad + 1024),
  ]);
  const gz = Bun.gzipSync(tar, { level: 9 });
  const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
  return { digest: sha(gz), size: gz.length, diffId: sha(tar), bytes: gz };
}

/**
 * The nydus image of one converted platform: the config with `diff_ids` = blob digests then
 * the bootstrap tar's digest and a history entry for the bootstrap, and the manifest whose
 * layers are the nydus blobs (annotated `nydus-blob`) then the bootstrap layer (annotated
 * `nydus-bootstrap`, fs version 6) — OCI or Docker media types following the source image.
 * With `inIndex` (for `--merge-platform`) the config gets the nydus config media type, as
 * nydusify does, so the two manifests of an index are told apart.
 */
export function nydusImage(src: ResolvedImage, blobs: NydusBlobLayer[], boot: BootstrapLayer, opts: { inIndex: boolean }): { config: Blob; manifest: Blob } {
  const docker = src.manifestDescriptor.mediaType === MediaType.DockerManifest;
  const config: ImageConfig = {
    ...src.config,
    rootfs: { type: "layers", diff_ids: [...blobs.map((b) => b.digest), boot.diffId] },
    history: [...(src.config.history ?? []), { created_by: "Nydus Converter", comment: "Nydus Bootstrap Layer" }],
  };
  const configBlob = blobOf(config, opts.inIndex ? MediaType.NydusConfig : docker ? MediaType.DockerConfig : MediaType.OciConfig);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
    config: configBlob.descriptor,
    layers: [
      ...blobs.map((b) => ({
        mediaType: MediaType.NydusBlob,
        digest: b.digest,
        size: b.size,
        annotations: { [NydusAnnotation.Blob]: "true" },
      })),
      {
        mediaType: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip,
        digest: boot.digest,
        size: boot.size,
        annotations: { [NydusAnnotation.Bootstrap]: "true", [NydusAnnotation.FsVersion]: "6" },
      },
    ],
  };
  return { config: configBlob, manifest: blobOf(manifest, manifest.mediaType as string) };
}

/**
 * The index of `--merge-platform`: the source's manifests (all of the source index, or the
 * single source manifest with its platform) followed by the nydus manifest, whose descriptor
 * carries `artifactType: application/vnd.nydus.image.manifest.v1+json` and the platform.
 */
export function mergedIndex(src: ResolvedImage, nydus: Descriptor, platform: Platform): Blob {
  const docker = src.manifestDescriptor.mediaType === MediaType.DockerManifest;
  const base: Descriptor[] = src.index
    ? src.index.index.manifests.filter((d) => d.artifactType !== MediaType.NydusArtifact)
    : [{ ...src.manifestDescriptor, platform }];
  const index: Index = {
    schemaVersion: 2,
    mediaType: docker ? MediaType.DockerList : MediaType.OciIndex,
    manifests: [...base, { ...nydus, platform, artifactType: MediaType.NydusArtifact }],
  };
  return blobOf(index, index.mediaType as string);
}
