/**
 * One OCI layer blob → one nydus data blob: decompress (digest and diff_id checked), read
 * the tar, build the blob and the layer tree. {@link convertLayer} runs it all on the calling
 * thread; `LayerThread` (layer-thread.ts) runs the blob half on a worker thread
 * (layer-worker.ts) and keeps the tree half on the calling thread. This module holds what
 * both sides share: the job, the pipeline pieces and the messages between the threads.
 */
import { type ErrorKind, RafsnapError } from "../errdefs/index.ts";
import {
  type BlobInfo,
  buildLayer,
  type ChunkRef,
  type Compressor,
  fastChunkHasher,
  fastCrc32c,
  type LayerBlobOptions,
  type LayerEntry,
  type LayerEntryHeader,
  type LayerResult,
  type PrefetchMatcher,
} from "../rafs/index.ts";
import type { RegistryOptions } from "../registry/index.ts";
import { decompressLayer } from "./layer.ts";
import { readTar } from "./tar.ts";

/** What to convert: the checks of the source blob and the builder options. */
export interface LayerJob {
  /** Names the layer in errors (e.g. `layer 1/3 (sha256:…) of registry/app:1`). */
  what: string;
  /** Expected sha256 digest of the blob as stored. */
  digest?: string;
  /** Expected sha256 digest of the uncompressed tar (diff_id). */
  diffId?: string;
  compressor: Compressor;
  /** FS chunk size (default 0x100000). */
  chunkSize?: number;
}

/** A finished layer: the builder's result and the uncompressed bytes read. */
export interface LayerDone {
  result: LayerResult;
  /** Uncompressed (tar) bytes of the layer. */
  bytes: number;
}

/** A layer conversion in progress: consume `blob` to its end, then await `finish()`. */
export interface LayerConversion {
  /**
   * The nydus blob, in order. A piece is valid only until the next one is requested (memory
   * is reused): copy what must be kept.
   */
  blob: AsyncIterable<Uint8Array>;
  /** The result; rejects with FailedPrecondition before `blob` has ended. */
  finish(): Promise<LayerDone>;
}

/**
 * The tar entries of layer blob `src` (decompressed, digest and diff_id checked when the
 * stream ends), counting the uncompressed bytes into `counter.bytes`.
 */
export function layerEntries(src: AsyncIterable<Uint8Array>, job: LayerJob, counter: { bytes: number }): AsyncIterable<LayerEntry> {
  const tar = (async function* () {
    for await (const c of decompressLayer(src, { what: job.what, digest: job.digest, diffId: job.diffId })) {
      counter.bytes += c.length;
      yield c;
    }
  })();
  return readTar(tar);
}

/**
 * Builder options of a conversion: the job's compressor and chunk size, blake3 and CRC-32C
 * in WebAssembly (instances of the caller's own), blob pieces valid until the next.
 */
export async function blobOptions(job: LayerJob): Promise<LayerBlobOptions> {
  const [hasher, crc32c] = await Promise.all([fastChunkHasher(), fastCrc32c()]);
  return { compressor: job.compressor, chunkSize: job.chunkSize, hasher, crc32c, transientPieces: true };
}

/**
 * Converts one layer on the calling thread. With `first`, the files `first.matcher` covers
 * are laid out first in the blob, the layer read a second time from `first.again()`
 * (`prefetchFirst` of `buildLayer`). Errors are those of `decompressLayer`, `readTar` and
 * `buildLayer`, thrown from the blob iteration.
 */
export function convertLayer(
  src: AsyncIterable<Uint8Array>,
  job: LayerJob,
  first?: { matcher: PrefetchMatcher; again: () => AsyncIterable<Uint8Array> },
): LayerConversion {
  const counter = { bytes: 0 };
  let build: ReturnType<typeof buildLayer> | undefined;
  // The second pass (listed files first) reads the layer again; its bytes are not counted.
  const prefetchFirst = first && { matcher: first.matcher, again: () => layerEntries(first.again(), job, { bytes: 0 }) };
  async function* blob(): AsyncGenerator<Uint8Array> {
    const opts = await blobOptions(job);
    build = buildLayer(layerEntries(src, job, counter), { ...opts, inlineBootstrap: true, prefetchFirst });
    yield* build.blob;
  }
  return {
    blob: blob(),
    async finish() {
      if (!build) throw new RafsnapError("failed-precondition", "convert: finish() called before the blob stream was consumed");
      return { result: build.finish(), bytes: counter.bytes };
    },
  };
}

/**
 * A layer blob the worker thread reads from its registry itself, so that its bytes never
 * pass through the calling thread.
 */
export interface RemoteBlob {
  /** Registry host, as `RegistryClient` takes it. */
  host: string;
  repo: string;
  digest: string;
  /** How to reach the registry (no logger: it cannot cross to another thread). */
  registry: Omit<RegistryOptions, "logger">;
}

/** One tar entry as the worker hands it to the tree: its chunks when its body is stored. */
export interface EntryRecord {
  header: LayerEntryHeader;
  /** References to the body's chunks (their `blob` is the worker's copy of the blob info). */
  chunks?: ChunkRef[];
}

/** Messages to the layer worker. */
export type ToWorker =
  /** A new layer; blob bytes go through `ring` (the same buffer for every layer of a thread). */
  | { t: "start"; job: LayerJob; ring: SharedArrayBuffer; remote?: RemoteBlob }
  /** Source bytes (transferred), when the calling thread reads the source. */
  | { t: "in"; chunk: Uint8Array }
  | { t: "in-end" }
  /** The caller is done with the oldest `n` bytes of blob output in the ring. */
  | { t: "ack"; n: number }
  /** The inline bootstrap the worker asked for. */
  | { t: "boot"; bytes: Uint8Array };

/** Messages from the layer worker. */
export type FromWorker =
  /** The worker consumed `n` source bytes. */
  | { t: "pull"; n: number }
  /** The next `len` blob bytes are at `off` in the ring. */
  | { t: "out"; off: number; len: number }
  /** The next entries, in tar order. */
  | { t: "entries"; list: EntryRecord[] }
  /** Every entry has been sent: make the inline bootstrap for this blob info. */
  | { t: "boot"; info: BlobInfo }
  | { t: "done"; info: BlobInfo; bytes: number }
  | { t: "error"; kind: ErrorKind; message: string };
