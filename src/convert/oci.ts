import { invalidArgument, notFound } from "../errdefs/index.ts";
import { isDigest, type RegistryClient } from "../registry/index.ts";

/** OCI / Docker media types the converter reads and writes. */
export const MediaType = {
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  DockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  NydusBlob: "application/vnd.oci.image.layer.nydus.blob.v1",
  NydusConfig: "application/vnd.nydus.image.config.v1+json",
  NydusArtifact: "application/vnd.nydus.image.manifest.v1+json",
} as const;

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

/** An image platform (`linux/amd64`, `linux/arm64/v8`). */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.features"?: string[];
}

/** An image manifest (OCI or Docker schema 2). */
export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An index / manifest list. */
export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** An image config (only what the converter touches is typed). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  rootfs: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
  [key: string]: unknown;
}

/** One platform's image as read from a registry. */
export interface ResolvedImage {
  manifest: Manifest;
  manifestDescriptor: Descriptor;
  config: ImageConfig;
  /** The index the manifest was chosen from, when the reference named one. */
  index?: { index: Index; descriptor: Descriptor };
}

const isIndexType = (t: string) => t === MediaType.OciIndex || t === MediaType.DockerList;

/** Parses `os/arch[/variant]`; InvalidArgument naming the text otherwise. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant] = text.split("/");
  if (!os || !architecture || text.split("/").length > 3) {
    throw invalidArgument(`platform ${JSON.stringify(text)} is not os/arch[/variant]`);
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** This machine's platform in OCI words (`linux/amd64`, `linux/arm64`). */
export function hostPlatform(): Platform {
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  return { os: "linux", architecture: arch };
}

function matches(p: Platform | undefined, want: Platform): boolean {
  if (!p) return false;
  if (p.os !== want.os || p.architecture !== want.architecture) return false;
  return !want.variant || !p.variant || p.variant === want.variant;
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw invalidArgument(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
/** Entries a manifest or index may list (containerd reads them at most 4 MiB long anyway). */
const MAX_DESCRIPTORS = 10_000;

/** `d` checked as a descriptor: media type, `sha256:<64 hex>` digest, size; InvalidArgument naming `what`. */
function descriptor(d: unknown, what: string): Descriptor {
  if (!isObj(d)) throw invalidArgument(`${what} is not an object`);
  if (typeof d.mediaType !== "string") throw invalidArgument(`${what}: mediaType is not a string`);
  if (typeof d.digest !== "string" || !isDigest(d.digest)) throw invalidArgument(`${what}: digest is not sha256:<64 hex>`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) throw invalidArgument(`${what}: size is not a non-negative integer`);
  if (d.annotations !== undefined && (!isObj(d.annotations) || Object.values(d.annotations).some((v) => typeof v !== "string"))) {
    throw invalidArgument(`${what}: annotations are not strings`);
  }
  return d as unknown as Descriptor;
}

function descriptors(v: unknown, what: string): Descriptor[] {
  if (!Array.isArray(v)) throw invalidArgument(`${what} is not a list`);
  if (v.length > MAX_DESCRIPTORS) throw invalidArgument(`${what} has ${v.length} entries, more than ${MAX_DESCRIPTORS}`);
  return v.map((d, i) => descriptor(d, `${what}[${i}]`));
}

/**
 * An image manifest from untrusted bytes: JSON whose config and layers are descriptors with
 * `sha256:<64 hex>` digests (they become URLs). InvalidArgument naming the field otherwise.
 */
export function parseManifest(bytes: Uint8Array, what: string): Manifest {
  const m = parseJson(bytes, what);
  if (!isObj(m)) throw invalidArgument(`${what} is not a JSON object`);
  descriptor(m.config, `${what}: config`);
  descriptors(m.layers, `${what}: layers`);
  return m as unknown as Manifest;
}

/** An index from untrusted bytes: its manifests are descriptors (see {@link parseManifest}). */
export function parseIndex(bytes: Uint8Array, what: string): Index {
  const m = parseJson(bytes, what);
  if (!isObj(m)) throw invalidArgument(`${what} is not a JSON object`);
  const list = descriptors(m.manifests, `${what}: manifests`);
  for (const [i, d] of list.entries()) {
    if (d.platform !== undefined && (!isObj(d.platform) || typeof d.platform.os !== "string" || typeof d.platform.architecture !== "string")) {
      throw invalidArgument(`${what}: manifests[${i}].platform lacks os/architecture strings`);
    }
  }
  return m as unknown as Index;
}

/** An image config from untrusted bytes: `rootfs.diff_ids` a list of sha256 digests. */
export function parseImageConfig(bytes: Uint8Array, what: string): ImageConfig {
  const c = parseJson(bytes, what);
  if (!isObj(c)) throw invalidArgument(`${what} is not a JSON object`);
  const r = c.rootfs;
  if (!isObj(r) || !Array.isArray(r.diff_ids) || r.diff_ids.some((d) => typeof d !== "string" || !isDigest(d))) {
    throw invalidArgument(`${what}: rootfs.diff_ids is not a list of sha256 digests`);
  }
  if (c.history !== undefined && !Array.isArray(c.history)) throw invalidArgument(`${what}: history is not a list`);
  return c as unknown as ImageConfig;
}

/**
 * Reads the image `ref` of `repo`: a single manifest, or the manifest of `platform` from an
 * index (skipping nydus manifests that an earlier `--merge-platform` conversion added), and
 * its config (digest-checked). NotFound when the index has no manifest for the platform;
 * InvalidArgument for an unsupported media type or malformed JSON.
 */
export async function resolveImage(client: RegistryClient, repo: string, ref: string, platform: Platform): Promise<ResolvedImage> {
  const top = await client.getManifest(repo, ref);
  const what = `${client.host}/${repo}:${ref}`;
  let index: ResolvedImage["index"];
  let fetched = top;
  if (isIndexType(top.mediaType)) {
    const idx = parseIndex(top.bytes, `index of ${what}`);
    const pick = idx.manifests.find((d) => matches(d.platform, platform) && d.artifactType !== MediaType.NydusArtifact);
    if (!pick) {
      const have = idx.manifests.map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}` : "?")).join(", ");
      throw notFound(`${what} has no manifest for ${platform.os}/${platform.architecture} (it has: ${have})`);
    }
    index = { index: idx, descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length } };
    fetched = await client.getManifest(repo, pick.digest);
  }
  if (fetched.mediaType !== MediaType.OciManifest && fetched.mediaType !== MediaType.DockerManifest) {
    throw invalidArgument(`${what}: unsupported manifest media type ${JSON.stringify(fetched.mediaType)}`);
  }
  const manifest = parseManifest(fetched.bytes, `manifest of ${what}`);
  const config = parseImageConfig(await client.readBlob(repo, manifest.config.digest), `config of ${what}`);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw invalidArgument(`${what}: config has ${config.rootfs?.diff_ids.length ?? 0} diff_ids for ${manifest.layers.length} layers`);
  }
  return {
    manifest,
    manifestDescriptor: { mediaType: fetched.mediaType, digest: fetched.digest, size: fetched.bytes.length },
    config,
    index,
  };
}
