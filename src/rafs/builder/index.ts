/**
 * RAFS v6 builder: one OCI layer's tar entries → a nydus data blob (streamed) plus the
 * layer's tree and bootstrap; layer trees → the merged image bootstrap. Pure: entries and
 * bytes in, bytes out. See docs/rafs.md and rafs-v6-spec.md §14–§20.
 */
import { failedPrecondition, invalidArgument } from "../../errdefs/index.ts";
import type { Compressor, Digester } from "../blob-table.ts";
import type { ChunkHasher } from "../compress.ts";
import { BlobWriter, type BlobInfo } from "./blob-writer.ts";
import { writeBootstrap } from "./bootstrap-writer.ts";
import { mergeTrees } from "./merge.ts";
import { LayerTreeBuilder, type LayerEntry, type TreeNode } from "./tree.ts";

export * from "./blob-writer.ts";
export * from "./bootstrap-writer.ts";
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
  if (!Number.isInteger(n) || n < 0x1000 || n > 0x1000000 || (n & (n - 1)) !== 0) throw invalidArgument(`rafs builder: chunk size 0x${n.toString(16)} is not a power of two in 0x1000…0x1000000`);
}

/**
 * Cuts a file body of `size` bytes into FS chunks. Throws InvalidArgument naming `what` when
 * the body is shorter or longer than `size`.
 */
async function* chunksOf(body: AsyncIterable<Uint8Array>, size: number, chunkSize: number, what: string): AsyncGenerator<Uint8Array> {
  let left = size;
  let buf = new Uint8Array(Math.min(chunkSize, left));
  let fill = 0;
  for await (const piece of body) {
    let o = 0;
    while (o < piece.length) {
      if (buf.length === 0) throw invalidArgument(`rafs builder: ${what}: more data than the ${size} bytes its header says`);
      const n = Math.min(buf.length - fill, piece.length - o);
      buf.set(piece.subarray(o, o + n), fill);
      fill += n;
      o += n;
      if (fill === buf.length) {
        yield buf;
        left -= buf.length;
        buf = new Uint8Array(Math.min(chunkSize, left));
        fill = 0;
      }
    }
  }
  if (left !== 0) throw invalidArgument(`rafs builder: ${what}: body ended ${left} bytes short of its ${size}-byte size`);
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
  checkChunkSize(chunkSize);
  const compressor = opts.compressor ?? "zstd";
  const digester = opts.digester ?? "blake3";
  const inline = opts.inlineBootstrap ?? true;
  const writer = new BlobWriter({ compressor, digester, chunkSize, hasher: opts.hasher });
  const tree = new LayerTreeBuilder();
  let result: LayerResult | undefined;
  const boot = () => writeBootstrap(tree.root, { chunkSize, compressor, digester, merged: false });
  async function* blob(): AsyncGenerator<Uint8Array> {
    for await (const { header, body } of entries) {
      const inode = tree.add(header);
      if (!inode) continue;
      for await (const raw of chunksOf(body, header.size, chunkSize, `/${header.path}`)) {
        const { ref, bytes } = writer.addChunk(raw);
        inode.chunks.push(ref);
        if (bytes) yield bytes;
      }
    }
    let inlineBoot: Uint8Array | undefined;
    const tail = writer.finish(
      inline
        ? () => {
            inlineBoot = boot();
            return inlineBoot;
          }
        : undefined,
    );
    yield* tail;
    result = { blob: writer.info, tree: tree.root, bootstrap: inlineBoot ?? boot() };
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
}

/**
 * Merges layer results (lower → upper) with overlay semantics and writes the image
 * bootstrap: every inode extended, HAS_XATTR set, INLINED_FS_META cleared, blobs numbered in
 * first-use order, unused blobs (layers without file data) left out.
 *
 * Throws InvalidArgument when `layers` is empty or the layers disagree on chunk size, plus
 * the failure modes of {@link writeBootstrap}.
 */
export function buildImageBootstrap(layers: readonly LayerResult[], opts: ImageBootstrapOptions = {}): Uint8Array {
  const first = layers[0];
  if (!first) throw invalidArgument("rafs builder: an image needs at least one layer");
  for (const l of layers) {
    if (l.blob.chunkSize !== first.blob.chunkSize) throw invalidArgument(`rafs builder: layer blob ${l.blob.blobId} has chunk size 0x${l.blob.chunkSize.toString(16)}, the first layer 0x${first.blob.chunkSize.toString(16)}`);
  }
  const root = mergeTrees(layers.map((l) => l.tree)) as TreeNode;
  return writeBootstrap(root, { chunkSize: first.blob.chunkSize, compressor: first.blob.compressor, digester: first.blob.digester, merged: true, prefetchRoot: opts.prefetchRoot });
}
