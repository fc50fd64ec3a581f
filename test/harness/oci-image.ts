// Pushes OCI images to a test registry: layer tars (gzipped with pigz) with a config and a
// manifest, or a one-layer image made from a directory, for converter and data-plane tests.
import type { RegistryClient } from "../../src/registry/index.ts";
import { sha256File } from "../support/tree-compare.ts";
import { run } from "./process.ts";

const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
const enc = new TextEncoder();
/** Layers up to this size are pushed in one PUT; bigger ones are streamed in parts. */
const IN_MEMORY = 64 << 20;

/** One layer for {@link pushImage}: an uncompressed tar. */
export interface LayerSource {
  tar: string;
  /** diff_id written into the config instead of the tar's real sha256 (to test verification). */
  diffId?: string;
}

/** What {@link pushImage} pushed: digests and sizes of the manifest, config and layers. */
export interface PushedImage {
  manifest: { digest: string; size: number };
  config: { digest: string; size: number };
  layers: { digest: string; size: number; diffId: string }[];
}

/** Options of {@link pushImage}. */
export interface PushImageOptions {
  /** The config's `config` object (Cmd, Env, …); none when omitted. */
  config?: Record<string, unknown>;
  /** Config `architecture`; default amd64. */
  architecture?: string;
}

/**
 * Gzips each layer tar (`pigz -n`, to `${work}-N.tar.gz`; the tars are kept) and pushes the
 * layers, a config (diff_ids = sha256 of the tars, plus `opts.config`) and an OCI manifest as
 * `repo:tag`. Small layers go up in one PUT, big ones streamed.
 */
export async function pushImage(
  c: RegistryClient,
  repo: string,
  tag: string,
  layers: readonly LayerSource[],
  work: string,
  opts: PushImageOptions = {},
): Promise<PushedImage> {
  const pushed: PushedImage["layers"] = [];
  for (const [i, layer] of layers.entries()) {
    const gz = `${work}-${i}.tar.gz`;
    const z = await run(["sh", "-c", 'exec pigz -n -c -- "$1" > "$2"', "pigz", layer.tar, gz], { timeoutMs: 600_000 });
    if (z.code !== 0) throw new Error(`pigz ${layer.tar}: ${z.stderr}`);
    const [rawSha, gzSha] = await Promise.all([sha256File(layer.tar), sha256File(gz)]);
    const digest = `sha256:${gzSha}`;
    const size = Bun.file(gz).size;
    await c.pushBlob(repo, digest, size <= IN_MEMORY ? await Bun.file(gz).bytes() : Bun.file(gz).stream());
    pushed.push({ digest, size, diffId: layer.diffId ?? `sha256:${rawSha}` });
  }
  const configDoc = {
    architecture: opts.architecture ?? "amd64",
    os: "linux",
    ...(opts.config ? { config: opts.config } : {}),
    rootfs: { type: "layers", diff_ids: pushed.map((l) => l.diffId) },
  };
  const config = enc.encode(JSON.stringify(configDoc));
  await c.pushBlob(repo, sha(config), config);
  const manifest = enc.encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
      layers: pushed.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: l.digest, size: l.size })),
    }),
  );
  await c.putManifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", manifest);
  return { manifest: { digest: sha(manifest), size: manifest.length }, config: { digest: sha(config), size: config.length }, layers: pushed };
}

/**
 * Tars `tree` reproducibly (GNU tar, sorted, mtime 0, owner 0) and pushes it as a one-layer
 * image `repo:tag` ({@link pushImage}). `lieAboutDiffId` writes a wrong diff_id into the
 * config. `work` is a scratch path prefix for the tar files. Returns the layer digest.
 */
export async function pushDirImage(c: RegistryClient, repo: string, tag: string, tree: string, work: string, lieAboutDiffId = false): Promise<string> {
  const tar = `${work}.tar`;
  const t = await run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", tree, "-cf", tar, "."]);
  if (t.code !== 0) throw new Error(`tar: ${t.stderr}`);
  const image = await pushImage(c, repo, tag, [{ tar, diffId: lieAboutDiffId ? `sha256:${"0".repeat(64)}` : undefined }], work);
  return (image.layers[0] as PushedImage["layers"][number]).digest;
}

/** `n` bytes of incompressible, reproducible noise (xorshift32). */
export function noise(n: number, seed = 2463534242): Uint8Array {
  const w = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
  return new Uint8Array(w.buffer, 0, n);
}
