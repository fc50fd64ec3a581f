/**
 * Blob data planning: for a range of a blob's uncompressed address space (chunk at
 * `blkaddr × bs`, docs/design.md §2), which compressed ranges to fetch and how to turn them
 * into verified uncompressed bytes. This is what the data plane calls on a cache miss.
 */
import { notImplemented } from "../errdefs/index.ts";
import { malformed, readChecked, toHex, type ByteSource } from "./bytes.ts";
import { parseChunkDigests, type ChunkInfo } from "./blob-meta.ts";
import type { BlobEntry } from "./blob-table.ts";
import { type ChunkHasher, decompress, digest } from "./compress.ts";
import { locatePayload } from "./toc.ts";

/** One contiguous compressed range of the data blob and the chunks it carries. */
export interface FetchRange {
  offset: number;
  length: number;
  chunks: ChunkInfo[];
}

/** Result of {@link planRange}. */
export interface RangePlan {
  /** The requested uncompressed range. */
  offset: number;
  length: number;
  /** Every chunk overlapping the range, in uncompressed order (whole chunks). */
  chunks: ChunkInfo[];
  /** Compressed ranges to read, in blob order; adjacent chunks are merged. */
  fetches: FetchRange[];
}

/** Options of {@link planRange}. */
export interface PlanOptions {
  /** Merge two compressed ranges separated by at most this many bytes (default 0: only adjacent). */
  maxGap?: number;
  /**
   * Do not grow a merged range past this many bytes (a single chunk may still exceed it);
   * default unlimited. Smaller requests let decoding one overlap fetching the next.
   */
  maxSize?: number;
}

const UNSUPPORTED = 0x2 | 0x4 | 0x8; // CiFlags ZRAN | BATCH | ENCRYPTED

/**
 * Plans the reads for `[offset, offset + length)` of `blob`'s uncompressed address space,
 * given its CI entries (sorted by uncompressed offset, as {@link parseCiEntries} guarantees).
 * Gaps between chunks (4 KiB alignment padding) are zeros and need no fetch.
 *
 * Throws InvalidArgument when the range is outside `[0, uncompressed_size)` or a chunk's
 * compressed range lies outside the blob's chunk data; NotImplemented for ZRan, batch or
 * encrypted chunks.
 */
export function planRange(blob: BlobEntry, chunks: readonly ChunkInfo[], offset: number, length: number, opts: PlanOptions = {}): RangePlan {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > blob.uncompressedSize) {
    throw malformed(`blob ${blob.blobId} range`, offset, `[${offset}, ${offset + length}) is outside the uncompressed size ${blob.uncompressedSize}`);
  }
  const end = offset + length;
  // First chunk whose end is past `offset`.
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = chunks[mid] as ChunkInfo;
    if (c.uncompressedOffset + c.uncompressedSize <= offset) lo = mid + 1;
    else hi = mid;
  }
  const hit: ChunkInfo[] = [];
  for (let i = lo; i < chunks.length && length > 0; i++) {
    const c = chunks[i] as ChunkInfo;
    if (c.uncompressedOffset >= end) break;
    if (c.flags & UNSUPPORTED) throw notImplemented(`rafs: blob ${blob.blobId} chunk ${c.ciIndex}: ZRan, batch and encrypted chunks are not supported yet`);
    const limit = blob.compressedSize;
    if (limit > 0 && c.compressedOffset + c.compressedSize > limit) {
      throw malformed(
        `blob ${blob.blobId} chunk ${c.ciIndex}.compressed_offset`,
        c.compressedOffset,
        `compressed range ends at ${c.compressedOffset + c.compressedSize}, past the blob's compressed size ${limit}`,
      );
    }
    hit.push(c);
  }
  const maxGap = opts.maxGap ?? 0;
  const maxSize = opts.maxSize ?? Number.POSITIVE_INFINITY;
  const fetches: FetchRange[] = [];
  for (const c of [...hit].sort((a, b) => a.compressedOffset - b.compressedOffset)) {
    const last = fetches.at(-1);
    const gap = last ? c.compressedOffset - (last.offset + last.length) : -1;
    if (last && gap >= 0 && gap <= maxGap && c.compressedOffset + c.compressedSize - last.offset <= maxSize) {
      last.length = c.compressedOffset + c.compressedSize - last.offset;
      last.chunks.push(c);
    } else {
      fetches.push({ offset: c.compressedOffset, length: c.compressedSize, chunks: [c] });
    }
  }
  return { offset, length, chunks: hit, fetches };
}

/** The compressed bytes of `chunk` inside the bytes fetched for `fetch`. */
export function chunkBytes(fetch: FetchRange, data: Uint8Array, chunk: ChunkInfo): Uint8Array {
  const from = chunk.compressedOffset - fetch.offset;
  if (data.length !== fetch.length || from < 0 || from + chunk.compressedSize > data.length) {
    throw malformed(`chunk ${chunk.ciIndex}`, chunk.compressedOffset, `not inside the fetched range [${fetch.offset}, ${fetch.offset + data.length})`);
  }
  return data.subarray(from, from + chunk.compressedSize);
}

/** Options of {@link decodeChunk}. */
export interface DecodeOptions {
  /** Expected digest (raw 32 bytes or hex) of the uncompressed chunk; verified when given. */
  expectedDigest?: Uint8Array | string;
  /** Digest function (default {@link digest}; `fastChunkHasher()` for speed). */
  hasher?: ChunkHasher;
}

/**
 * Turns the compressed bytes of `chunk` into its uncompressed bytes with the blob's
 * compressor, then verifies the blob's digester (blake3 or sha256) against
 * `opts.expectedDigest` when given.
 *
 * Throws InvalidArgument naming the blob, the chunk's ci index and uncompressed offset when the
 * input length is wrong, decompression fails or yields the wrong size, or the digest differs.
 */
export function decodeChunk(
  blob: Pick<BlobEntry, "blobId" | "compressor" | "digester">,
  chunk: ChunkInfo,
  bytes: Uint8Array,
  opts: DecodeOptions = {},
): Uint8Array {
  const what = `blob ${blob.blobId} chunk ${chunk.ciIndex} (uncompressed offset ${chunk.uncompressedOffset})`;
  if (bytes.length !== chunk.compressedSize) throw malformed(what, chunk.compressedOffset, `got ${bytes.length} bytes, expected ${chunk.compressedSize}`);
  const out = chunk.compressed ? decompress(blob.compressor, bytes, chunk.uncompressedSize, what) : decompress("none", bytes, chunk.uncompressedSize, what);
  if (opts.expectedDigest !== undefined) {
    const want = typeof opts.expectedDigest === "string" ? opts.expectedDigest : toHex(opts.expectedDigest);
    const got = toHex((opts.hasher ?? digest)(blob.digester, out));
    if (got !== want) throw malformed(what, chunk.compressedOffset, `${blob.digester} digest mismatch: expected ${want}, got ${got}`);
  }
  return out;
}

/**
 * Copies decoded chunks into the requested range of `plan`, zero-filling alignment gaps.
 * `decoded` maps ci index → uncompressed chunk bytes. Throws InvalidArgument when a planned
 * chunk is missing.
 */
export function assembleRange(plan: RangePlan, decoded: ReadonlyMap<number, Uint8Array>): Uint8Array {
  const out = new Uint8Array(plan.length);
  const end = plan.offset + plan.length;
  for (const c of plan.chunks) {
    const data = decoded.get(c.ciIndex);
    if (!data) throw malformed(`chunk ${c.ciIndex}`, c.uncompressedOffset, "planned chunk was not decoded");
    const from = Math.max(plan.offset, c.uncompressedOffset);
    const to = Math.min(end, c.uncompressedOffset + c.uncompressedSize);
    if (to > from) out.set(data.subarray(from - c.uncompressedOffset, to - c.uncompressedOffset), from - plan.offset);
  }
  return out;
}

/** Options of {@link readRange}. */
export interface ReadRangeOptions extends PlanOptions {
  /** Per-ci-index expected digests (e.g. from {@link readChunkDigests}); verified when given. */
  digests?: readonly Uint8Array[];
}

/**
 * Convenience over a synchronous blob source: plan, fetch, decode (verifying digests when
 * given) and assemble `[offset, offset + length)` of the uncompressed address space.
 * Failure modes are those of {@link planRange}, {@link decodeChunk} and out-of-range reads.
 */
export function readRange(
  blob: BlobEntry,
  chunks: readonly ChunkInfo[],
  blobSrc: ByteSource,
  offset: number,
  length: number,
  opts: ReadRangeOptions = {},
): Uint8Array {
  const plan = planRange(blob, chunks, offset, length, opts);
  const decoded = new Map<number, Uint8Array>();
  for (const f of plan.fetches) {
    const data = readChecked(blobSrc, f.offset, f.length, `blob ${blob.blobId} chunk data`);
    for (const c of f.chunks) {
      const expectedDigest = opts.digests?.[c.ciIndex];
      decoded.set(c.ciIndex, decodeChunk(blob, c, chunkBytes(f, data, c), { expectedDigest }));
    }
  }
  return assembleRange(plan, decoded);
}

/**
 * Reads the chunk digest array (`blob.digest`) of a data blob, located through the ToC or the
 * tar walk. Returns undefined when the blob has none. Throws InvalidArgument when its size is
 * not `32 × chunk_count`.
 */
export function readChunkDigests(blobSrc: ByteSource, blob: BlobEntry): Uint8Array[] | undefined {
  const p = locatePayload(blobSrc, "blob.digest");
  if (!p) return undefined;
  return parseChunkDigests(readChecked(blobSrc, p.offset, p.compressedSize, "blob.digest"), blob.chunkCount, p.offset);
}
