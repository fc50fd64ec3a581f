/**
 * Blob meta: the compression-context (CI) header, CI entries v1/v2, ZRan contexts, the local
 * `<blob_id>.blob.meta` file and the chunk digest array — docs/rafs.md §15.3–§15.5.
 */
import { bytesSource, malformed, readChecked, Struct, type ByteSource } from "./bytes.ts";
import { BlobFeatures, COMPRESSORS, type BlobEntry, type Compressor } from "./blob-table.ts";
import { decompress } from "./compress.ts";

/** CI header magic (both ends of the 4096-byte header). */
export const CI_MAGIC = 0xb10bb10b;
/** Size of the CI header. */
export const CI_HEADER_SIZE = 4096;

/** The 4096-byte compression-context header. */
export interface CiHeader {
  features: number;
  ciCompressor: Compressor;
  ciEntries: number;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
  zranOffset: number;
  zranSize: number;
  zranCount: number;
}

/**
 * Parses a CI header whose first byte is at absolute offset `base`.
 * Throws InvalidArgument when either magic is wrong, the compressor is unknown, or the ZRan
 * region lies outside the uncompressed CI data.
 */
export function parseCiHeader(bytes: Uint8Array, base: number): CiHeader {
  if (bytes.length !== CI_HEADER_SIZE) throw malformed("ci_header", base, `${bytes.length} bytes, expected 4096`);
  const s: Struct = new Struct(bytes, base, "ci_header");
  if (s.u32(0, "s_magic") !== CI_MAGIC) s.fail(0, "s_magic", `0x${s.u32(0, "s_magic").toString(16)} is not 0xb10bb10b`);
  if (s.u32(4092, "s_magic2") !== CI_MAGIC) s.fail(4092, "s_magic2", `0x${s.u32(4092, "s_magic2").toString(16)} is not 0xb10bb10b`);
  const c = s.u32(8, "s_ci_compressor");
  const ciCompressor = COMPRESSORS[c];
  if (ciCompressor === undefined) s.fail(8, "s_ci_compressor", `unknown algorithm ${c}`);
  const h: CiHeader = {
    features: s.u32(4, "s_features"),
    ciCompressor,
    ciEntries: s.u32(12, "s_ci_entries"),
    ciOffset: s.u64(16, "s_ci_offset", 2 ** 40),
    ciCompressedSize: s.u64(24, "s_ci_compressed_size", 2 ** 40),
    ciUncompressedSize: s.u64(32, "s_ci_uncompressed_size", 2 ** 40),
    zranOffset: s.u64(40, "s_ci_zran_offset", 2 ** 40),
    zranSize: s.u64(48, "s_ci_zran_size", 2 ** 40),
    zranCount: s.u32(56, "s_ci_zran_count"),
  };
  if (h.zranSize > 0 && h.zranOffset + h.zranSize > h.ciUncompressedSize) s.fail(40, "s_ci_zran_offset", "ZRan region lies outside the CI data");
  if (h.zranCount * 40 > h.zranSize) s.fail(56, "s_ci_zran_count", `${h.zranCount} contexts do not fit in ${h.zranSize} bytes`);
  return h;
}

/**
 * Checks a CI header against its blob table entry, as nydusd does before trusting it.
 * Throws InvalidArgument naming the mismatching field.
 */
export function checkCiHeader(h: CiHeader, blob: BlobEntry, base: number): void {
  const bad = (field: string, off: number, got: unknown, want: unknown) => {
    throw malformed(`ci_header.${field}`, base + off, `${got} ≠ blob table ${want} (blob ${blob.blobId})`);
  };
  if (h.ciEntries !== blob.chunkCount) bad("s_ci_entries", 12, h.ciEntries, blob.chunkCount);
  if (h.ciCompressor !== blob.ciCompressor) bad("s_ci_compressor", 8, h.ciCompressor, blob.ciCompressor);
  if (h.ciOffset !== blob.ciOffset) bad("s_ci_offset", 16, h.ciOffset, blob.ciOffset);
  if (h.ciCompressedSize !== blob.ciCompressedSize) bad("s_ci_compressed_size", 24, h.ciCompressedSize, blob.ciCompressedSize);
  if (h.ciUncompressedSize !== blob.ciUncompressedSize) bad("s_ci_uncompressed_size", 32, h.ciUncompressedSize, blob.ciUncompressedSize);
  // The features that change how the CI table reads (merging may clear others, e.g. INLINED_FS_META).
  const layout = BlobFeatures.CHUNK_INFO_V2 | BlobFeatures.ZRAN | BlobFeatures.BATCH | BlobFeatures.ENCRYPTED;
  if ((h.features & layout) !== (blob.features & layout)) bad("s_features", 4, `0x${h.features.toString(16)}`, `0x${blob.features.toString(16)}`);
}

/** CI v2 flags. */
export const CiFlags = { COMPRESSED: 0x1, ZRAN: 0x2, BATCH: 0x4, ENCRYPTED: 0x8, HAS_CRC32: 0x10 } as const;

/** One chunk's compression info, in CI order (= ci index = increasing uncompressed offset). */
export interface ChunkInfo {
  ciIndex: number;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
  /** CI v2 flags (v1: COMPRESSED only). */
  flags: number;
  /** v2 `data` word: ZRan/batch (index, offset) or crc32 in the low half. */
  data: bigint;
}

/**
 * Decodes `count` CI entries (16-byte v1 or 24-byte v2) from uncompressed CI data.
 *
 * Throws InvalidArgument naming the entry when the data is too short for `count`, when
 * uncompressed ranges are not increasing and non-overlapping, when a chunk reaches past
 * `uncompressedLimit` (the blob's uncompressed size, if given), or when a v2 entry has unknown
 * flag bits or a HAS_CRC32 chunk with crc 0.
 */
export function parseCiEntries(data: Uint8Array, count: number, v2: boolean, uncompressedLimit?: number): ChunkInfo[] {
  const size = v2 ? 24 : 16;
  if (count * size > data.length) throw malformed("ci_entries", 0, `${count} entries need ${count * size} bytes, have ${data.length}`);
  const s: Struct = new Struct(data, 0, "ci_entry");
  const out: ChunkInfo[] = [];
  let prevEnd = 0;
  for (let i = 0; i < count; i++) {
    const o = i * size;
    const u = s.u64n(o, `[${i}].uncomp_info`);
    const c = s.u64n(o + 8, `[${i}].comp_info`);
    let info: ChunkInfo;
    if (!v2) {
      const uSize = Number(((u >> 44n) & 0xfffffn) | (((u >> 8n) & 0xfn) << 20n)) + 1;
      const cSize = Number(((c >> 44n) & 0xfffffn) | (((c >> 40n) & 0xfn) << 20n)) + 1;
      info = {
        ciIndex: i,
        compressedOffset: Number(c & 0xff_ffff_ffffn),
        compressedSize: cSize,
        uncompressedOffset: Number(u & 0xfff_ffff_f000n),
        uncompressedSize: uSize,
        compressed: cSize !== uSize,
        flags: cSize !== uSize ? CiFlags.COMPRESSED : 0,
        data: 0n,
      };
    } else {
      const flags = Number(u >> 56n);
      if (flags & ~0x1f) s.fail(o + 7, `[${i}].flags`, `unknown bits 0x${flags.toString(16)}`);
      const d = s.u64n(o + 16, `[${i}].data`);
      if (flags & CiFlags.HAS_CRC32 && (d & 0xffffffffn) === 0n) s.fail(o + 16, `[${i}].crc32`, "HAS_CRC32 with crc 0");
      info = {
        ciIndex: i,
        compressedOffset: Number(c & 0xff_ffff_ffffn),
        compressedSize: Number(c >> 40n),
        uncompressedOffset: Number(u & 0xffff_ffffn) * 4096,
        uncompressedSize: Number((u >> 32n) & 0xff_ffffn) + 1,
        compressed: (flags & CiFlags.COMPRESSED) !== 0,
        flags,
        data: d,
      };
    }
    if (info.uncompressedOffset < prevEnd)
      s.fail(o, `[${i}].uncompressed_offset`, `${info.uncompressedOffset} overlaps the previous chunk ending at ${prevEnd}`);
    prevEnd = info.uncompressedOffset + info.uncompressedSize;
    if (uncompressedLimit !== undefined && prevEnd > uncompressedLimit)
      s.fail(o, `[${i}].uncompressed_offset`, `chunk ends at ${prevEnd}, past the blob's uncompressed size ${uncompressedLimit}`);
    out.push(info);
  }
  return out;
}

/** A ZRan inflate context (40 bytes). */
export interface ZranContext {
  inOffset: number;
  outOffset: number;
  dictOffset: number;
  inLen: number;
  outLen: number;
  dictSize: number;
  ctxByte: number;
  ctxBits: number;
}

/** Decodes the header's ZRan contexts from uncompressed CI data (bounds checked by {@link parseCiHeader}). */
export function parseZranContexts(data: Uint8Array, h: CiHeader): ZranContext[] {
  const out: ZranContext[] = [];
  for (let i = 0; i < h.zranCount; i++) {
    const o = h.zranOffset + i * 40;
    if (o + 40 > data.length) throw malformed(`zran_context[${i}]`, o, "past the end of the CI data");
    const s: Struct = new Struct(data.subarray(o, o + 40), o, `zran_context[${i}]`);
    out.push({
      inOffset: s.u64(0, "in_offset"),
      outOffset: s.u64(8, "out_offset"),
      dictOffset: s.u64(16, "dict_offset"),
      inLen: s.u32(24, "in_len"),
      outLen: s.u32(28, "out_len"),
      dictSize: s.u32(32, "dict_size"),
      ctxByte: s.u8(36, "ctx_byte"),
      ctxBits: s.u8(37, "ctx_bits"),
    });
  }
  return out;
}

/** Parsed blob meta: header, uncompressed CI data, chunks, ZRan contexts. */
export interface BlobMeta {
  header: CiHeader;
  /** Uncompressed CI data (entries, then ZRan/batch contexts and dictionaries). */
  ciData: Uint8Array;
  chunks: ChunkInfo[];
  zran: ZranContext[];
}

function finish(header: CiHeader, ciData: Uint8Array, blob?: BlobEntry): BlobMeta {
  const v2 = (header.features & BlobFeatures.CHUNK_INFO_V2) !== 0;
  const chunks = parseCiEntries(ciData, header.ciEntries, v2, blob?.uncompressedSize);
  if (blob && (header.features & (BlobFeatures.ZRAN | BlobFeatures.BATCH | BlobFeatures.SEPARATE)) === 0) {
    // Plain blobs: every chunk's compressed bytes lie before the CI array.
    for (const c of chunks) {
      if (c.compressedOffset + c.compressedSize > blob.ciOffset) {
        throw malformed(
          "ci_entry",
          0,
          `[${c.ciIndex}] compressed range ${c.compressedOffset}+${c.compressedSize} reaches past the chunk data (CI array at ${blob.ciOffset}, blob ${blob.blobId})`,
        );
      }
    }
  }
  return { header, ciData, chunks, zran: parseZranContexts(ciData, header) };
}

/**
 * Reads the blob meta embedded in a data blob: `[ci_offset, +ci_compressed_size)` decompressed
 * with the blob's CI compressor, followed by the 4096-byte header, which must agree with
 * the blob table entry.
 *
 * Throws InvalidArgument when the ranges fall outside the blob, the header is bad or
 * disagrees, the CI data does not decompress to `ci_uncompressed_size`, or entries are bad.
 */
export function readBlobMeta(blobSrc: ByteSource, blob: BlobEntry): BlobMeta {
  const hdrAt = blob.ciOffset + blob.ciCompressedSize;
  const header = parseCiHeader(readChecked(blobSrc, hdrAt, CI_HEADER_SIZE, "ci_header"), hdrAt);
  checkCiHeader(header, blob, hdrAt);
  const raw = readChecked(blobSrc, blob.ciOffset, blob.ciCompressedSize, "ci_array");
  const ciData = decompress(blob.ciCompressor, raw, blob.ciUncompressedSize, `blob ${blob.blobId} CI array at ${blob.ciOffset}`);
  return finish(header, ciData, blob);
}

/**
 * Parses a local `<blob_id>.blob.meta` cache file: uncompressed CI data zero-padded to 4 KiB,
 * then the 4096-byte header. With `blob`, the header must agree with that blob table entry
 * (as {@link checkCiHeader}) and every chunk must lie inside the blob — a cache file is checked
 * against the image that reads it, never trusted on its own. Throws InvalidArgument when the
 * file size does not match the header's CI size, the header disagrees, or entries/contexts
 * are bad.
 */
export function parseBlobMetaFile(src: ByteSource, blob?: BlobEntry): BlobMeta {
  if (src.size < CI_HEADER_SIZE) throw malformed("blob_meta", 0, `file of ${src.size} bytes is smaller than the 4096-byte header`);
  const hdrAt = src.size - CI_HEADER_SIZE;
  const header = parseCiHeader(readChecked(src, hdrAt, CI_HEADER_SIZE, "ci_header"), hdrAt);
  const padded = Math.ceil(header.ciUncompressedSize / 4096) * 4096;
  if (padded !== hdrAt)
    throw malformed(
      "ci_header.s_ci_uncompressed_size",
      hdrAt + 32,
      `${header.ciUncompressedSize} bytes of CI data (padded ${padded}) but the header is at ${hdrAt}`,
    );
  if (blob) checkCiHeader(header, blob, hdrAt);
  return finish(header, readChecked(src, 0, header.ciUncompressedSize, "ci_data"), blob);
}

/**
 * Why the bytes of a `.blob.meta` file are not acceptable for `blob` (see
 * {@link parseBlobMetaFile} with an entry), or undefined when they are.
 */
export function checkBlobMetaFile(bytes: Uint8Array, blob: BlobEntry): string | undefined {
  try {
    parseBlobMetaFile(bytesSource(bytes), blob);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Splits a chunk digest array (`blob.digest`) into `count` 32-byte digests.
 * Throws InvalidArgument when the array is not exactly `32 × count` bytes.
 */
export function parseChunkDigests(bytes: Uint8Array, count: number, base = 0): Uint8Array[] {
  if (bytes.length !== count * 32) throw malformed("blob.digest", base, `${bytes.length} bytes, expected 32 × ${count}`);
  return Array.from({ length: count }, (_, i) => bytes.subarray(i * 32, i * 32 + 32));
}
