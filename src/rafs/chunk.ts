/**
 * Chunk-based regular files: the chunk format word, the per-inode chunk index array, the
 * bootstrap's chunk info table and the prefetch table — docs/rafs.md §11–§13.
 */
import { malformed, readChecked, Struct, toHex, type ByteSource } from "./bytes.ts";
import { Layout, type Inode } from "./inode.ts";
import type { ExtSuperblock, Superblock } from "./superblock.ts";

/** EROFS_CHUNK_FORMAT_INDEXES. */
export const CHUNK_FORMAT_INDEXES = 0x20;
/** Mask of the chunk-size bits (log2(chunk) − blkszbits). */
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;

/** Decoded chunk format of a chunk-based inode. */
export interface ChunkFormat {
  /** The raw format word. */
  format: number;
  /** log2 of the chunk size the kernel uses to map this file. */
  chunkBits: number;
}

/**
 * Decodes the chunk format stored in `i_u` of a chunk-based inode.
 * Throws InvalidArgument when the INDEXES bit is missing (block-map chunk files are not RAFS),
 * other bits are set, or the resulting chunk size exceeds 2^48.
 */
export function parseChunkFormat(sb: Superblock, inode: Inode): ChunkFormat {
  const format = inode.u & 0xffff;
  const at = inode.offset + 16;
  const field = `inode[${inode.nid}].chunk_format`;
  if ((format & CHUNK_FORMAT_INDEXES) === 0) throw malformed(field, at, `0x${format.toString(16)} lacks the INDEXES bit (block-map chunks are not supported)`);
  if ((format & ~(CHUNK_FORMAT_INDEXES | CHUNK_FORMAT_BLKBITS_MASK)) !== 0 || inode.u >>> 16 !== 0)
    throw malformed(field, at, `unsupported bits in 0x${inode.u.toString(16)}`);
  const chunkBits = sb.blkszbits + (format & CHUNK_FORMAT_BLKBITS_MASK);
  if (chunkBits > 48) throw malformed(field, at, `chunk size 2^${chunkBits} is too large`);
  return { format, chunkBits };
}

/** One entry of an inode's chunk index array. */
export interface ChunkIndex {
  /** Position in the file: entry k covers file bytes `[k × S, min((k+1) × S, size))`, S = ext-SB chunk size. */
  index: number;
  fileOffset: number;
  /** Bytes of the file this entry covers. */
  length: number;
  /** Blob index (device id − 1). */
  blobIndex: number;
  /** Chunk-info index in that blob (24 bits). */
  ciIndex: number;
  /** Block in the blob's uncompressed address space. */
  blkaddr: number;
  /** `blkaddr × bs`. */
  uncompressedOffset: number;
}

/**
 * Reads the chunk index array of regular file `inode`: `ceil(size / s_chunk_size)` 8-byte
 * entries at `align(inode end + xattrs, 8)`.
 *
 * Throws InvalidArgument naming the inode when the inode is not chunk-based, when the array
 * (sized from a possibly forged `i_size`) would run past the end of the bootstrap — checked
 * before anything is allocated — or when an entry has device id 0 (a hole or primary-device
 * data, which nydus never writes) or names a blob index ≥ `blobCount`.
 */
export function readChunkIndexes(src: ByteSource, sb: Superblock, ext: ExtSuperblock, inode: Inode, blobCount: number): ChunkIndex[] {
  const what = `inode[${inode.nid}]`;
  if (inode.layout !== Layout.CHUNK_BASED) throw malformed(`${what}.i_format`, inode.offset, "not a chunk-based inode");
  parseChunkFormat(sb, inode);
  const S = ext.chunkSize;
  const count = Math.ceil(inode.size / S);
  const start = Math.ceil((inode.offset + inode.inodeSize + inode.xattrSize) / 8) * 8;
  if (start + count * 8 > src.size) {
    throw malformed(
      `${what}.i_size`,
      inode.offset + 8,
      `size ${inode.size} needs ${count} chunk indexes at [${start}, ${start + count * 8}), past the end of the bootstrap (${src.size} bytes)`,
    );
  }
  const s: Struct = new Struct(readChecked(src, start, count * 8, `${what}.chunk_indexes`), start, `${what}.chunk_index`);
  const out: ChunkIndex[] = [];
  for (let k = 0; k < count; k++) {
    const lo = s.u16(8 * k, "c_blob_addr_lo");
    const hi = s.u16(8 * k + 2, "c_blob_addr_hi");
    const blkaddr = s.u32(8 * k + 4, "c_blk_addr");
    const deviceId = hi & 0xff;
    if (deviceId === 0) s.fail(8 * k + 2, `[${k}].device_id`, "0 (hole or primary-device data is not RAFS)");
    const blobIndex = deviceId - 1;
    if (blobIndex >= blobCount) s.fail(8 * k + 2, `[${k}].device_id`, `blob index ${blobIndex} but the blob table has ${blobCount} blobs`);
    const fileOffset = k * S;
    out.push({
      index: k,
      fileOffset,
      length: Math.min(S, inode.size - fileOffset),
      blobIndex,
      ciIndex: lo | ((hi >>> 8) << 16),
      blkaddr,
      uncompressedOffset: blkaddr * sb.blockSize,
    });
  }
  return out;
}

/** Chunk flags of the bootstrap chunk table. */
export const ChunkFlags = { COMPRESSED: 0x1, HOLE: 0x2, ENCRYPTED: 0x4, BATCH: 0x8, HAS_CRC32: 0x10 } as const;

/** One RafsV6 chunk info table entry (80 bytes). */
export interface ChunkTableEntry {
  /** Hex digest of the uncompressed chunk. */
  digest: string;
  blobIndex: number;
  flags: number;
  compressedSize: number;
  uncompressedSize: number;
  compressedOffset: number;
  uncompressedOffset: number;
  fileOffset: number;
  ciIndex: number;
  crc32: number;
}

/**
 * Parses the chunk info table located by the extended superblock (its size was bounded by the
 * bootstrap size in {@link parseExtSuperblock}). Throws InvalidArgument naming the entry when a
 * blob index is ≥ `blobCount` or a size exceeds 2^32.
 */
export function parseChunkTable(src: ByteSource, ext: ExtSuperblock, blobCount: number): ChunkTableEntry[] {
  const n = ext.chunkTableSize / 80;
  const bytes = readChecked(src, ext.chunkTableOffset, ext.chunkTableSize, "chunk_table");
  const out: ChunkTableEntry[] = [];
  for (let i = 0; i < n; i++) {
    const s: Struct = new Struct(bytes.subarray(i * 80, i * 80 + 80), ext.chunkTableOffset + i * 80, `chunk_table[${i}]`);
    const blobIndex = s.u32(32, "blob_index");
    if (blobIndex >= blobCount) s.fail(32, "blob_index", `${blobIndex} but the blob table has ${blobCount} blobs`);
    out.push({
      digest: toHex(s.raw(0, 32, "block_id")),
      blobIndex,
      flags: s.u32(36, "flags"),
      compressedSize: s.u32(40, "compressed_size"),
      uncompressedSize: s.u32(44, "uncompressed_size"),
      compressedOffset: s.u64(48, "compressed_offset"),
      uncompressedOffset: s.u64(56, "uncompressed_offset"),
      fileOffset: s.u64(64, "file_offset"),
      ciIndex: s.u32(72, "index"),
      crc32: s.u32(76, "crc32"),
    });
  }
  return out;
}

/** Key used to match an inode's chunk index to a chunk table entry (nydus: blob, ci, blkaddr). */
export function chunkKey(blobIndex: number, ciIndex: number, uncompressedOffset: number): string {
  return `${blobIndex}:${ciIndex}:${uncompressedOffset}`;
}

/**
 * Reads the prefetch table: u32 nids, stopping at the first 0. Returns [] when there is none.
 */
export function parsePrefetchTable(src: ByteSource, ext: ExtSuperblock): number[] {
  if (ext.prefetchTableSize === 0) return [];
  const s: Struct = new Struct(readChecked(src, ext.prefetchTableOffset, ext.prefetchTableSize, "prefetch_table"), ext.prefetchTableOffset, "prefetch_table");
  const out: number[] = [];
  for (let i = 0; i < ext.prefetchTableSize / 4; i++) {
    const nid = s.u32(4 * i, `[${i}]`);
    if (nid === 0) break;
    out.push(nid);
  }
  return out;
}
