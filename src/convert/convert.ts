import { invalidArgument } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { buildImageBootstrap, type Compressor, type LayerResult, openBootstrapBytes, PrefetchMatcher } from "../rafs/index.ts";
import { credentialsFromDockerConfig, manifestRefOf, parseImageRef, RegistryClient } from "../registry/index.ts";
import { convertLayer } from "./layer-build.ts";
import { LayerThread } from "./layer-thread.ts";
import { bootstrapLayer, mergedIndex, type NydusBlobLayer, nydusImage } from "./nydus-image.ts";
import { hostPlatform, type Platform, resolveImage } from "./oci.ts";

/** Options of {@link convertImage}. */
export interface ConvertOptions {
  /** OCI image reference to read (tag or digest; an index is resolved by platform). */
  source: string;
  /** Reference to push the nydus image to (its tag is written last). */
  target: string;
  /** http:// for both registries (loopback hosts use it anyway unless `tls` is set). */
  plainHttp?: boolean;
  /** Use https:// even for loopback hosts, trusting `caCert` (PEM) or, with `skipVerify`, anything. */
  tls?: { caCert?: string; skipVerify?: boolean };
  compressor?: Compressor;
  chunkSize?: number;
  /** Push an index holding the source manifest and the nydus manifest (artifactType). */
  mergePlatform?: boolean;
  platform?: Platform;
  /** Layers converted at the same time; default 2. */
  concurrency?: number;
  /**
   * Convert layers with worker threads, one per concurrent layer (default true): each worker
   * downloads its layer, decompresses it and cuts, hashes and compresses its chunks; this
   * thread builds the layer trees and uploads the blobs, so concurrent layers use as many
   * cores. False runs everything on the calling thread (same output, byte for byte).
   */
  layerThreads?: boolean;
  /**
   * The startup working set (absolute paths, directories meaning everything below them,
   * `--prefetch-files`/`--prefetch-patterns`): written as the bootstrap's prefetch table
   * instead of `[root]`, and those files' chunks laid out first and contiguously in each blob.
   * Each layer is then read twice, on the calling thread (`layerThreads` does not apply).
   */
  prefetch?: readonly string[];
  logger: Logger;
  /** Called when a layer is done: its index, the uncompressed bytes read, seconds taken. */
  onLayer?: (e: { index: number; count: number; bytes: number; seconds: number; blob: NydusBlobLayer }) => void;
}

/** What {@link convertImage} pushed. */
export interface ConvertResult {
  /** Digest the target tag now points to (manifest, or index with `mergePlatform`). */
  digest: string;
  mediaType: string;
  blobs: NydusBlobLayer[];
  bootstrap: { digest: string; size: number };
  /** Entries of the bootstrap's prefetch table. */
  prefetchEntries: number;
}

/**
 * Converts an OCI image in a registry into a nydus (RAFS v6) image in a registry: each
 * layer is streamed from the source (digest and diff_id checked), turned into a nydus blob
 * that is uploaded as it is produced (nothing held whole in memory), the layer bootstraps are
 * merged into the image bootstrap, and the bootstrap layer, config and manifest (or index)
 * are pushed — the target tag last, so a failure never leaves a tag pointing at a half image.
 * Errors name the layer and registry involved.
 */
export async function convertImage(opts: ConvertOptions): Promise<ConvertResult> {
  const src = parseImageRef(opts.source);
  const dst = parseImageRef(opts.target);
  if (!dst.tag) throw invalidArgument(`target ${JSON.stringify(opts.target)} needs a tag`);
  const registryOptions = (host: string) => ({
    plainHttp: opts.plainHttp ? true : opts.tls ? false : undefined,
    caCert: opts.tls?.caCert,
    skipVerify: opts.tls?.skipVerify,
    credentials: credentialsFromDockerConfig(host),
  });
  const clientFor = (host: string) => new RegistryClient(host, { ...registryOptions(host), logger: opts.logger });
  const from = clientFor(src.host);
  const to = dst.host === src.host ? from : clientFor(dst.host);
  const platform = opts.platform ?? hostPlatform();
  const image = await resolveImage(from, src.repository, manifestRefOf(src), platform);
  const layers = image.manifest.layers;
  const results: (LayerResult | undefined)[] = new Array(layers.length);
  const blobs: NydusBlobLayer[] = new Array(layers.length);
  let next = 0;
  const matcher = opts.prefetch && opts.prefetch.length > 0 ? new PrefetchMatcher(opts.prefetch) : undefined;
  const worker = async () => {
    const thread = opts.layerThreads === false || matcher ? undefined : new LayerThread();
    try {
      await convertLayers(thread);
    } finally {
      thread?.close();
    }
  };
  const convertLayers = async (thread: LayerThread | undefined) => {
    for (;;) {
      const i = next++;
      if (i >= layers.length) return;
      const layer = layers[i];
      if (!layer) return;
      const what = `layer ${i + 1}/${layers.length} (${layer.digest}) of ${opts.source}`;
      const t0 = performance.now();
      const job = { what, digest: layer.digest, diffId: image.config.rootfs.diff_ids[i], compressor: opts.compressor ?? "zstd", chunkSize: opts.chunkSize };
      // A layer thread downloads the layer itself: its bytes never cross threads.
      const build = thread
        ? thread.convert({ host: src.host, repo: src.repository, digest: layer.digest, registry: registryOptions(src.host) }, job)
        : convertLayer(from.blobStream(src.repository, layer.digest), job, matcher && { matcher, again: () => from.blobStream(src.repository, layer.digest) });
      const pushed = await to.pushBlobStream(dst.repository, build.blob);
      const { result: res, bytes } = await build.finish();
      if (pushed.digest !== res.blob.digest) {
        throw invalidArgument(`${what}: uploaded blob has digest ${pushed.digest}, the builder computed ${res.blob.digest}`);
      }
      results[i] = res;
      blobs[i] = { digest: pushed.digest, size: pushed.size };
      opts.onLayer?.({ index: i, count: layers.length, bytes, seconds: (performance.now() - t0) / 1000, blob: blobs[i] as NydusBlobLayer });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 2, layers.length)) }, worker));
  const bootBytes = buildImageBootstrap(results as LayerResult[], { dedup: true, prefetch: matcher ? opts.prefetch : undefined });
  const prefetchEntries = openBootstrapBytes(bootBytes, "the converted bootstrap").prefetch.length;
  const boot = bootstrapLayer(bootBytes);
  await to.pushBlob(dst.repository, boot.digest, boot.bytes);
  const { config, manifest } = nydusImage(image, blobs, boot, { inIndex: opts.mergePlatform === true });
  await to.pushBlob(dst.repository, config.descriptor.digest, config.bytes);
  let top = manifest;
  if (opts.mergePlatform) {
    // The source manifest (and its blobs) must exist in the target repository too.
    if (dst.host !== src.host || dst.repository !== src.repository) {
      throw invalidArgument("--merge-platform needs the target in the source repository (the index refers to the source manifest)");
    }
    await to.putManifest(dst.repository, manifest.descriptor.digest, manifest.descriptor.mediaType, manifest.bytes);
    top = mergedIndex(image, manifest.descriptor, platform);
  }
  const digest = await to.putManifest(dst.repository, dst.tag, top.descriptor.mediaType, top.bytes);
  return { digest, mediaType: top.descriptor.mediaType, blobs, bootstrap: { digest: boot.digest, size: boot.size }, prefetchEntries };
}
