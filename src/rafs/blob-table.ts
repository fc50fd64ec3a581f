/**
 * RAFS v6 blob table (`RafsV6Blob`, 256 bytes per blob) — docs/rafs.md §6.
 */
import { asciiZ, isZero, readChecked, Struct, toHex, type ByteSource } from "./bytes.ts";
import type { ExtSuperblock } from "./superblock.ts";

/** Compression algorithms by their on-disk number (blob table, CI header). */
export const COMPRESSORS = ["none", "lz4_block", "gzip", "zstd"] as const;
/** A compression algorithm name. */
export type Compressor = (typeof COMPRESSORS)[number];
/** Digest algorithms by their on-disk number. */
export const DIGESTERS = ["blake3", "sha256"] as const;
/** A digest algorithm name. */
export type Digester = (typeof DIGESTERS)[number];

/** BlobFeatures bits (spec §6). */
export const BlobFeatures = {
  ALIGNED: 0x1,
  INLINED_FS_META: 0x2,
  CHUNK_INFO_V2: 0x4,
  ZRAN: 0x8,
  SEPARATE: 0x10,
  INLINED_CHUNK_DIGEST: 0x20,
  TARFS: 0x40,
  BATCH: 0x80,
  ENCRYPTED: 0x100,
  IS_CHUNKDICT_GENERATED: 0x200,
  IS_SEPARATED_WITH_PREFETCH_FILES: 0x400,
  EXTERNAL: 0x800,
  HAS_TAR_HEADER: 0x1000_0000,
  HAS_TOC: 0x2000_0000,
  CAP_TAR_TOC: 0x4000_0000,
} as const;

/** The blob id a bootstrap inlined in its own data blob gives that blob (§15.7). */
export const INLINE_BLOB_ID = "x".repeat(64);

/** Whether `id` is a servable blob id: a sha256 in lowercase hex (what file names and URLs take). */
export function isBlobId(id: string): boolean {
  return /^[0-9a-f]{64}$/.test(id);
}

/** One blob table entry. Sizes and offsets are numbers (validated ≤ 2^53). */
export interface BlobEntry {
  blobId: string;
  blobIndex: number;
  chunkSize: number;
  chunkCount: number;
  compressor: Compressor;
  digester: Digester;
  features: number;
  compressedSize: number;
  uncompressedSize: number;
  blobTocSize: number;
  ciCompressor: Compressor;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
  /** Hex, or "" when all zero. */
  blobTocDigest: string;
  /** Hex, or "" when all zero. */
  blobMetaDigest: string;
  blobMetaSize: number;
  cipherAlgo: number;
}

/** Size of one blob table entry. */
export const BLOB_ENTRY_SIZE = 256;

function algo<T>(s: Struct, off: number, field: string, names: readonly T[]): T {
  const n = s.u32(off, field);
  const v = names[n];
  if (v === undefined) s.fail(off, field, `unknown algorithm ${n}`);
  return v;
}

/**
 * Parses the blob table located by the extended superblock.
 *
 * The entry count comes from `s_blob_table_size / 256`, which {@link parseExtSuperblock} has
 * already bounded by the bootstrap size. Throws InvalidArgument naming the entry and field when:
 * the blob id is empty/not ASCII; blob_index ≠ position; chunk_size ≠ the ext superblock's;
 * chunk_count > 2^24; an algorithm number is unknown; reserved feature bits are set;
 * sizes exceed their limits (compressed 2^40, uncompressed 2^44); the CI sizes disagree with
 * chunk_count (v1: ×16, v2: ×24 or ≥ with BATCH/ZRAN/ENCRYPTED) or the compressed CI size is
 * larger than the uncompressed one.
 */
export function parseBlobTable(src: ByteSource, ext: ExtSuperblock): BlobEntry[] {
  const n = ext.blobTableSize / BLOB_ENTRY_SIZE;
  const out: BlobEntry[] = [];
  for (let i = 0; i < n; i++) {
    const off = ext.blobTableOffset + i * BLOB_ENTRY_SIZE;
    const what = `blob_table[${i}]`;
    const s: Struct = new Struct(readChecked(src, off, BLOB_ENTRY_SIZE, what), off, what);
    const blobId = asciiZ(s.raw(0, 64, "blob_id"));
    // Blob ids become file and URL path components: a sha256 in lowercase hex, or the "x"×64
    // placeholder of a bootstrap inlined in its own blob (§15.7; never servable, see isBlobId).
    if (!blobId || !(isBlobId(blobId) || blobId === INLINE_BLOB_ID)) s.fail(0, "blob_id", "not 64 lowercase hex characters");
    const blobIndex = s.u32(64, "blob_index");
    if (blobIndex !== i) s.fail(64, "blob_index", `${blobIndex} ≠ position ${i}`);
    const chunkSize = s.u32(68, "chunk_size");
    if (chunkSize !== ext.chunkSize) s.fail(68, "chunk_size", `0x${chunkSize.toString(16)} ≠ superblock chunk size 0x${ext.chunkSize.toString(16)}`);
    const chunkCount = s.u32(72, "chunk_count");
    if (chunkCount > 1 << 24) s.fail(72, "chunk_count", `${chunkCount} exceeds 2^24`);
    const compressor = algo(s, 76, "compression_algo", COMPRESSORS);
    const digester = algo(s, 80, "digest_algo", DIGESTERS);
    const features = s.u32(84, "features");
    if ((features & 0xf000) !== 0 || (features & 0x8000_0000) !== 0) s.fail(84, "features", `reserved bits in 0x${features.toString(16)}`);
    const compressedSize = s.u64(88, "compressed_size", 2 ** 40);
    const uncompressedSize = s.u64(96, "uncompressed_size", 2 ** 44);
    const ciCompressor = algo(s, 108, "ci_compressor", COMPRESSORS);
    const ciOffset = s.u64(112, "ci_offset", 2 ** 40);
    const ciCompressedSize = s.u64(120, "ci_compressed_size", 2 ** 40);
    const ciUncompressedSize = s.u64(128, "ci_uncompressed_size", 2 ** 40);
    const v2 = (features & BlobFeatures.CHUNK_INFO_V2) !== 0;
    const loose = (features & (BlobFeatures.BATCH | BlobFeatures.ZRAN | BlobFeatures.ENCRYPTED)) !== 0;
    const exempt = (features & (BlobFeatures.TARFS | BlobFeatures.IS_CHUNKDICT_GENERATED)) !== 0;
    if (!exempt && ciUncompressedSize !== 0) {
      const want = chunkCount * (v2 ? 24 : 16);
      if (v2 && loose ? ciUncompressedSize < want : ciUncompressedSize !== want) {
        s.fail(128, "ci_uncompressed_size", `${ciUncompressedSize} does not match chunk_count ${chunkCount} × ${v2 ? 24 : 16}`);
      }
    }
    if (ciCompressedSize > ciUncompressedSize) s.fail(120, "ci_compressed_size", `${ciCompressedSize} > ci_uncompressed_size ${ciUncompressedSize}`);
    const tocDigest = s.raw(136, 32, "blob_toc_digest");
    const metaDigest = s.raw(168, 32, "blob_meta_digest");
    out.push({
      blobId,
      blobIndex,
      chunkSize,
      chunkCount,
      compressor,
      digester,
      features,
      compressedSize,
      uncompressedSize,
      blobTocSize: s.u32(104, "blob_toc_size"),
      ciCompressor,
      ciOffset,
      ciCompressedSize,
      ciUncompressedSize,
      blobTocDigest: isZero(tocDigest) ? "" : toHex(tocDigest),
      blobMetaDigest: isZero(metaDigest) ? "" : toHex(metaDigest),
      // For encrypted blobs these bytes are IV material, not a size: never reject them.
      blobMetaSize: Number(s.u64n(200, "blob_meta_size")),
      cipherAlgo: s.u32(216, "cipher_algo"),
    });
  }
  return out;
}
