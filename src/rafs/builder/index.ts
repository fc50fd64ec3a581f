/**
 * RAFS v6 builder: one OCI layer's tar entries → a nydus data blob (streamed) plus the
 * layer's tree and bootstrap; layer trees → the merged image bootstrap. Pure: entries and
 * bytes in, bytes out. See docs/rafs.md and docs/rafs.md §14–§20.
 */
import { failedPrecondition, invalidArgument } from "../../errdefs/index.ts";
import type { Compressor, Digester } from "../blob-table.ts";
import type { ChunkHasher } from "../compress.ts";
import { BlobWriter, type BlobInfo, type ChunkRef } from "./blob-writer.ts";
import { writeBootstrap } from "./bootstrap-writer.ts";
import type { PrefetchMatcher } from "../prefetch-list.ts";
import { dedupChunks } from "./dedup.ts";
import { mergeTrees } from "./merge.ts";
import { type LayerEntry, type LayerEntryHeader, LayerTreeBuilder, type TreeNode } from "./tree.ts";

export * from "./blob-writer.ts";
export * from "./bootstrap-writer.ts";
export * from "./dedup.ts";
export * from "./fast-hash.ts";
export * from "./merge.ts";
export * from "./tree.ts";

/** Options of {@link buildLayer}. */
export interface LayerBuildOptions {
  /** Chunk compressor: `zstd` (default) or `none`; others are NotImplemented. */
  compressor?: Compressor;
  /** FS chunk size, a power of two in 4 KiB…16 MiB (default 0x100000). */
  chunkSize?: number;
  /** Chunk digest algorithm (default blake3). */
  digester?: Digester;
  /**
   * Embed the layer bootstrap in the blob (`image.boot`, nydusify's `--blob-inline-meta`;
   * default true). The blob id is then sha256 of the blob file (the OCI layer digest);
   * without it, sha256 of all bytes but the chunk digest array (§15.7).
   */
  inlineBootstrap?: boolean;
  /** Chunk digest function (default the pure-JS one; `fastChunkHasher()` for speed). */
  hasher?: ChunkHasher;
  /** CRC-32C of a chunk (default the pure-JS one; `fastCrc32c()` for speed). */
  crc32c?: (data: Uint8Array) => number;
  /**
   * Reuse memory across blob pieces (default false): each piece is then valid only until the
   * next one is requested. Saves an allocation and a copy per chunk, for consumers that copy
   * anyway (an upload buffer, a ring shared with another thread).
   */
  transientPieces?: boolean;
  /**
   * Lay the chunks of the files `matcher` covers first and contiguously in the blob (the
   * startup working set, `--prefetch-files`): the entries are read twice — the listed files'
   * bodies on the first pass, the others' on a second pass over `again()`, which must yield
   * the same entries (else InvalidArgument). A layer holding no listed file comes out as
   * without this option, still read twice.
   */
  prefetchFirst?: { matcher: PrefetchMatcher; again: () => AsyncIterable<LayerEntry> };
}

/** What a finished layer build yields. */
export interface LayerResult {
  /** Blob table data of the layer's blob (id, sizes, CI location, features). */
  blob: BlobInfo;
  /** The layer's tree (whiteouts still present as ordinary entries). */
  tree: TreeNode;
  /** The layer bootstrap: the inline one (blob id `"x"×64`) or, without inline, one naming the real id. */
  bootstrap: Uint8Array;
}

/** A layer build in progress: consume `blob` fully, then call `finish`. */
export interface LayerBuild {
  /** The data blob, in pieces of at most one compressed chunk (or one tail section). */
  blob: AsyncIterable<Uint8Array>;
  /** Throws FailedPrecondition when called before `blob` has been consumed to its end. */
  finish(): LayerResult;
}

/** Throws InvalidArgument unless `n` is a power of two in 4 KiB…16 MiB. */
function checkChunkSize(n: number): void {
  if (!Number.isInteger(n) || n < 0x1000 || n > 0x1000000 || (n & (n - 1)) !== 0)
    throw invalidArgument(`rafs builder: chunk size 0x${n.toString(16)} is not a power of two in 0x1000…0x1000000`);
}

/**
 * Cuts a file body of `size` bytes into FS chunks. Throws InvalidArgument naming `what` when
 * the body is shorter or longer than `size`. Each chunk is a buffer of its own, unless
 * `scratch` (chunk-size bytes) is given: then chunks are views of it, or of the body's pieces
 * when a whole chunk lies in one, valid until the next chunk is requested.
 */
async function* chunksOf(body: AsyncIterable<Uint8Array>, size: number, chunkSize: number, what: string, scratch?: Uint8Array): AsyncGenerator<Uint8Array> {
  let left = size;
  const nextBuf = () => (scratch ? scratch.subarray(0, Math.min(chunkSize, left)) : new Uint8Array(Math.min(chunkSize, left)));
  let buf = nextBuf();
  let fill = 0;
  for await (const piece of body) {
    let o = 0;
    while (o < piece.length) {
      if (buf.length === 0) throw invalidArgument(`rafs builder: ${what}: more data than the ${size} bytes its header says`);
      if (scratch && fill === 0 && piece.length - o >= buf.length) {
        const whole = piece.subarray(o, o + buf.length);
        o += whole.length;
        left -= whole.length;
        buf = nextBuf();
        yield whole;
        continue;
      }
      const n = Math.min(buf.length - fill, piece.length - o);
      buf.set(piece.subarray(o, o + n), fill);
      fill += n;
      o += n;
      if (fill === buf.length) {
        const full = buf;
        left -= full.length;
        buf = nextBuf();
        fill = 0;
        yield full;
      }
    }
  }
  if (left !== 0) throw invalidArgument(`rafs builder: ${what}: body ended ${left} bytes short of its ${size}-byte size`);
}

/**
 * Where {@link buildLayerBlob} puts the entries it reads: the layer tree
 * ({@link LayerTreeBuilder}), or something that hands them on to the thread holding it.
 */
export interface EntrySink {
  /**
   * Takes the next entry, in tar order. Returns the array the references to the entry's
   * chunks are to be appended to (its inode's `chunks`) when its body is stored, else
   * undefined (the body is skipped). May throw (a bad entry ends the build).
   */
  entry(header: LayerEntryHeader): ChunkRef[] | undefined;
}

/** Options of {@link buildLayerBlob}: those of {@link buildLayer}, the inline bootstrap made by the caller. */
export interface LayerBlobOptions extends Omit<LayerBuildOptions, "inlineBootstrap"> {
  /**
   * Makes the inline bootstrap (`image.boot`) from the blob info, complete but for its id
   * (`"x"×64`) and ToC fields; absent: the blob has none and its id follows §15.7.
   */
  inlineBootstrap?: (info: BlobInfo) => Uint8Array | Promise<Uint8Array>;
}

/** A blob build in progress ({@link buildLayerBlob}). */
export interface LayerBlobBuild {
  /** The data blob, as {@link LayerBuild.blob}. */
  blob: AsyncIterable<Uint8Array>;
  /** The blob's table data; complete once `blob` has ended. */
  info: BlobInfo;
}

/**
 * The blob half of {@link buildLayer}: reads `entries` in order, gives each to `sink`, cuts
 * the bodies it asks for into chunks (digest, dedup, compression) and yields the blob bytes,
 * then the tail sections. The tree half is whatever `sink` does with the entries, so it can
 * live on another thread; with `LayerTreeBuilder.add` it is `buildLayer`. Throws
 * InvalidArgument for a bad chunk size and NotImplemented for gzip at once; the other
 * failure modes of `buildLayer` come from the blob iteration.
 */
export function buildLayerBlob(entries: AsyncIterable<LayerEntry>, sink: EntrySink, opts: LayerBlobOptions = {}): LayerBlobBuild {
  const chunkSize = opts.chunkSize ?? 0x100000;
  checkChunkSize(chunkSize);
  const writer = new BlobWriter({
    compressor: opts.compressor ?? "zstd",
    digester: opts.digester ?? "blake3",
    chunkSize,
    hasher: opts.hasher,
    crc32c: opts.crc32c,
  });
  const scratch = opts.transientPieces ? new Uint8Array(chunkSize) : undefined;
  async function* cut(header: LayerEntryHeader, body: AsyncIterable<Uint8Array>, chunks: ChunkRef[]): AsyncGenerator<Uint8Array> {
    for await (const raw of chunksOf(body, header.size, chunkSize, `/${header.path}`, scratch)) {
      const { ref, bytes } = writer.addChunk(raw);
      chunks.push(ref);
      if (bytes) yield bytes;
    }
  }
  async function* blob(): AsyncGenerator<Uint8Array> {
    const first = opts.prefetchFirst;
    // Entries (by ordinal) whose bodies wait for the second pass.
    const later = new Map<number, { path: string; chunks: ChunkRef[] }>();
    let n = 0;
    for await (const { header, body } of entries) {
      const chunks = sink.entry(header);
      const i = n++;
      if (!chunks) continue;
      if (first && !first.matcher.covers(header.path)) later.set(i, { path: header.path, chunks });
      else yield* cut(header, body, chunks);
    }
    if (first && later.size > 0) {
      let m = 0;
      for await (const { header, body } of first.again()) {
        const wait = later.get(m++);
        if (!wait) continue;
        if (wait.path !== header.path)
          throw invalidArgument(`rafs builder: the second pass over the layer found /${header.path} where the first found /${wait.path}`);
        later.delete(m - 1);
        yield* cut(header, body, wait.chunks);
      }
      const missing = later.values().next().value;
      if (missing) throw invalidArgument(`rafs builder: the second pass over the layer ended before /${missing.path}`);
    }
    const inline = opts.inlineBootstrap;
    yield* writer.finishSections(inline !== undefined);
    yield* writer.finishToc(inline ? await inline(writer.info) : undefined);
  }
  return { blob: blob(), info: writer.info };
}

/**
 * Converts one layer. Iterating `blob` reads `entries` in order (tar order = chunk order),
 * builds the tree, and yields the blob bytes: chunk data as it is produced (memory stays at
 * about one chunk plus 48 bytes per unique chunk), then the tail sections. After the
 * iteration ends, `finish()` returns the blob info, tree and layer bootstrap.
 *
 * Failure modes (thrown from the blob iteration): InvalidArgument for a bad chunk size, a hard
 * link to a missing or non-regular target (naming both paths), a path below a non-directory,
 * an xattr EROFS cannot store, or a body whose length disagrees with its header;
 * NotImplemented for compressors other than zstd/none.
 */
export function buildLayer(entries: AsyncIterable<LayerEntry>, opts: LayerBuildOptions = {}): LayerBuild {
  const chunkSize = opts.chunkSize ?? 0x100000;
  const compressor = opts.compressor ?? "zstd";
  const digester = opts.digester ?? "blake3";
  const tree = new LayerTreeBuilder();
  const boot = () => writeBootstrap(tree.root, { chunkSize, compressor, digester, merged: false });
  let inlineBoot: Uint8Array | undefined;
  const inlineBootstrap = (opts.inlineBootstrap ?? true) ? () => (inlineBoot = boot()) : undefined;
  const b = buildLayerBlob(entries, { entry: (h) => tree.add(h)?.chunks }, { ...opts, inlineBootstrap });
  let result: LayerResult | undefined;
  async function* blob(): AsyncGenerator<Uint8Array> {
    yield* b.blob;
    result = { blob: b.info, tree: tree.root, bootstrap: inlineBoot ?? boot() };
  }
  return {
    blob: blob(),
    finish() {
      if (!result) throw failedPrecondition("rafs builder: finish() called before the blob stream was fully consumed");
      return result;
    },
  };
}

/** Options of {@link buildImageBootstrap}. */
export interface ImageBootstrapOptions {
  /** Write the `[root]` prefetch table (nydusify passes `/`; default true). */
  prefetchRoot?: boolean;
  /** Absolute paths for the prefetch table instead of `[root]` (see {@link BootstrapOptions.prefetch}). */
  prefetch?: readonly string[];
  /**
   * Point chunks repeated across layers at their lowest copy ({@link dedupChunks}); default
   * false, the merge nydus-image does. `rafsnap convert` turns it on.
   */
  dedup?: boolean;
}

/**
 * Merges layer results (lower → upper) with overlay semantics and writes the image
 * bootstrap: every inode extended, HAS_XATTR set, INLINED_FS_META cleared, blobs numbered in
 * first-use order, unused blobs (layers without file data, or with `dedup` only repeats of
 * lower layers' chunks) left out.
 *
 * Throws InvalidArgument when `layers` is empty or the layers disagree on chunk size, plus
 * the failure modes of {@link writeBootstrap}.
 */
export function buildImageBootstrap(layers: readonly LayerResult[], opts: ImageBootstrapOptions = {}): Uint8Array {
  const first = layers[0];
  if (!first) throw invalidArgument("rafs builder: an image needs at least one layer");
  for (const l of layers) {
    if (l.blob.chunkSize !== first.blob.chunkSize)
      throw invalidArgument(
        `rafs builder: layer blob ${l.blob.blobId} has chunk size 0x${l.blob.chunkSize.toString(16)}, the first layer 0x${first.blob.chunkSize.toString(16)}`,
      );
  }
  const root = mergeTrees(layers.map((l) => l.tree)) as TreeNode;
  if (opts.dedup)
    dedupChunks(
      root,
      layers.map((l) => l.tree),
    );
  return writeBootstrap(root, {
    chunkSize: first.blob.chunkSize,
    compressor: first.blob.compressor,
    digester: first.blob.digester,
    merged: true,
    prefetchRoot: opts.prefetchRoot,
    prefetch: opts.prefetch,
  });
}
