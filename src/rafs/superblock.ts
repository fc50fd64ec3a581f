/**
 * EROFS superblock (at 1024), RAFS v6 extended superblock (at 1152) and the EROFS device
 * table — docs/rafs.md §3–§5.
 */
import { asciiZ, malformed, readChecked, Struct, type ByteSource } from "./bytes.ts";

/** Byte offset of the EROFS superblock. */
export const EROFS_SUPER_OFFSET = 1024;
/** EROFS superblock magic. */
export const EROFS_MAGIC = 0xe0f5e1e2;
/** feature_compat bit that marks a RAFS v6 bootstrap. */
export const FEATURE_COMPAT_RAFS_V6 = 0x40000000;
/** feature_compat bit: superblock CRC present. */
export const FEATURE_COMPAT_SB_CHKSUM = 0x1;
/** feature_incompat bit: chunk-based files. */
export const FEATURE_INCOMPAT_CHUNKED_FILE = 0x4;
/** feature_incompat bit: device table. */
export const FEATURE_INCOMPAT_DEVICE_TABLE = 0x8;
/** Byte offset of the RAFS extended superblock. */
export const RAFS_EXT_SUPER_OFFSET = 1152;
/** Size of one EROFS device slot. */
export const DEVICE_SLOT_SIZE = 128;

/** The EROFS superblock fields rafsnap uses (all of them, in on-disk order). */
export interface Superblock {
  magic: number;
  checksum: number;
  featureCompat: number;
  blkszbits: number;
  /** 1 << blkszbits. */
  blockSize: number;
  sbExtslots: number;
  rootNid: number;
  inos: number;
  buildTime: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
  featureIncompat: number;
  /** u1 (compression algorithms / lz4 max distance); 0 for RAFS. */
  u1: number;
  extraDevices: number;
  devtSlotoff: number;
  /** True when feature_compat carries the RAFS v6 marker. */
  isRafs: boolean;
}

/**
 * Parses and validates the EROFS superblock of a bootstrap.
 *
 * Throws InvalidArgument (naming the field and offset) when the input is shorter than 4096
 * bytes, the magic is wrong, blkszbits is outside 9…12, sb_extslots ≠ 0, a checksum is present
 * without the checksum feature, feature_incompat has bits other than
 * CHUNKED_FILE/DEVICE_TABLE/ZERO_PADDING (compressed EROFS images are not RAFS), the meta area
 * starts past the end, or the device table does not fit.
 */
export function parseSuperblock(src: ByteSource): Superblock {
  if (src.size < 4096) throw malformed("bootstrap.size", 0, `bootstrap is ${src.size} bytes, smaller than 4096`);
  const s: Struct = new Struct(readChecked(src, EROFS_SUPER_OFFSET, 128, "superblock"), EROFS_SUPER_OFFSET, "superblock");
  const magic = s.u32(0, "magic");
  if (magic !== EROFS_MAGIC) s.fail(0, "magic", `0x${magic.toString(16)} is not the EROFS magic 0xe0f5e1e2`);
  const blkszbits = s.u8(12, "blkszbits");
  if (blkszbits < 9 || blkszbits > 12) s.fail(12, "blkszbits", `${blkszbits} is outside 9…12`);
  const blockSize = 2 ** blkszbits;
  const featureCompat = s.u32(8, "feature_compat");
  const checksum = s.u32(4, "checksum");
  if (checksum !== 0 && (featureCompat & FEATURE_COMPAT_SB_CHKSUM) === 0) s.fail(4, "checksum", "non-zero without the checksum feature");
  const sbExtslots = s.u8(13, "sb_extslots");
  if (sbExtslots !== 0) s.fail(13, "sb_extslots", `${sbExtslots} (must be 0)`);
  const featureIncompat = s.u32(80, "feature_incompat");
  // ZERO_PADDING (0x1) is harmless for uncompressed images; any compression-related bit is not.
  if ((featureIncompat & ~0xd) !== 0) s.fail(80, "feature_incompat", `unsupported bits 0x${(featureIncompat & ~0xd).toString(16)}`);
  const metaBlkaddr = s.u32(40, "meta_blkaddr");
  if (metaBlkaddr * blockSize > src.size) s.fail(40, "meta_blkaddr", `meta area at ${metaBlkaddr * blockSize} starts past the end (${src.size} bytes)`);
  const extraDevices = s.u16(86, "extra_devices");
  const devtSlotoff = s.u16(88, "devt_slotoff");
  if (extraDevices > 0) {
    const start = devtSlotoff * DEVICE_SLOT_SIZE;
    if (start < EROFS_SUPER_OFFSET + 128) s.fail(88, "devt_slotoff", `${devtSlotoff} places the device table inside the superblock`);
    if (start + extraDevices * DEVICE_SLOT_SIZE > src.size)
      s.fail(86, "extra_devices", `${extraDevices} device slots at ${start} run past the end (${src.size} bytes)`);
  }
  const inos = s.u64(16, "inos");
  return {
    magic,
    checksum,
    featureCompat,
    blkszbits,
    blockSize,
    sbExtslots,
    rootNid: s.u16(14, "root_nid"),
    inos,
    buildTime: s.u64(24, "build_time"),
    buildTimeNsec: s.u32(32, "build_time_nsec"),
    blocks: s.u32(36, "blocks"),
    metaBlkaddr,
    xattrBlkaddr: s.u32(44, "xattr_blkaddr"),
    featureIncompat,
    u1: s.u16(84, "u1"),
    extraDevices,
    devtSlotoff,
    isRafs: (featureCompat & FEATURE_COMPAT_RAFS_V6) !== 0,
  };
}

/** RAFS super flags (ext superblock `s_flags`), spec §4. */
export const RafsFlags = {
  COMPRESSION_NONE: 0x1,
  COMPRESSION_LZ4: 0x2,
  HASH_BLAKE3: 0x4,
  HASH_SHA256: 0x8,
  EXPLICIT_UID_GID: 0x10,
  HAS_XATTR: 0x20,
  COMPRESSION_GZIP: 0x40,
  COMPRESSION_ZSTD: 0x80,
  INLINED_CHUNK_DIGEST: 0x100,
  TARFS_MODE: 0x200,
  ENCRYPTION_NONE: 0x0100_0000,
  ENCRYPTION_AES_128_XTS: 0x0200_0000,
} as const;

const KNOWN_FLAGS = 0x3ff | 0x0300_0000 | 0xfc00_0000; // defined bits + reserved compat bits
const COMPRESSION_BITS = [0x1, 0x2, 0x40, 0x80];
const HASH_BITS = [0x4, 0x8];

/** The RAFS v6 extended superblock. Offsets are absolute bootstrap offsets. */
export interface ExtSuperblock {
  flags: number;
  blobTableOffset: number;
  blobTableSize: number;
  chunkSize: number;
  chunkTableOffset: number;
  chunkTableSize: number;
  /** 0 when there is no prefetch table. */
  prefetchTableOffset: number;
  /** Bytes; forced to 0 when the offset is 0 (legacy images). */
  prefetchTableSize: number;
}

/**
 * Parses and validates the RAFS extended superblock at 1152.
 *
 * Throws InvalidArgument naming the field when: `s_flags` has unknown bits or not exactly one
 * compression and one hash bit; the chunk size is not a power of two in 4 KiB…16 MiB (512 B
 * allowed in tarfs mode); the blob table size is not a multiple of 256 or the blob table, the
 * chunk table (multiple of 80) or the prefetch table (multiple of 4) reach past the end.
 */
export function parseExtSuperblock(src: ByteSource): ExtSuperblock {
  const base = RAFS_EXT_SUPER_OFFSET;
  const s: Struct = new Struct(readChecked(src, base, 256, "ext_superblock"), base, "ext_superblock");
  const flags = s.u64(0, "s_flags");
  if (flags > 0xffffffff || (flags & ~KNOWN_FLAGS) !== 0) s.fail(0, "s_flags", `unknown bits in 0x${flags.toString(16)}`);
  if (COMPRESSION_BITS.filter((b) => flags & b).length !== 1) s.fail(0, "s_flags", `0x${flags.toString(16)} must carry exactly one compression bit`);
  if (HASH_BITS.filter((b) => flags & b).length !== 1) s.fail(0, "s_flags", `0x${flags.toString(16)} must carry exactly one hash bit`);
  const chunkSize = s.u32(20, "s_chunk_size");
  const minChunk = flags & RafsFlags.TARFS_MODE ? 512 : 4096;
  if (chunkSize < minChunk || chunkSize > 0x1000000 || (chunkSize & (chunkSize - 1)) !== 0) {
    s.fail(20, "s_chunk_size", `0x${chunkSize.toString(16)} is not a power of two in ${minChunk}…16 MiB`);
  }
  const blobTableOffset = s.u64(8, "s_blob_table_offset");
  const blobTableSize = s.u32(16, "s_blob_table_size");
  if (blobTableSize % 256 !== 0) s.fail(16, "s_blob_table_size", `${blobTableSize} is not a multiple of 256`);
  if (blobTableOffset + blobTableSize > src.size)
    s.fail(16, "s_blob_table_size", `blob table [${blobTableOffset}, ${blobTableOffset + blobTableSize}) runs past the end (${src.size} bytes)`);
  const chunkTableOffset = s.u64(24, "s_chunk_table_offset");
  const chunkTableSize = s.u64(32, "s_chunk_table_size");
  if (chunkTableSize % 80 !== 0) s.fail(32, "s_chunk_table_size", `${chunkTableSize} is not a multiple of 80`);
  if (chunkTableOffset + chunkTableSize > src.size)
    s.fail(32, "s_chunk_table_size", `chunk table [${chunkTableOffset}, ${chunkTableOffset + chunkTableSize}) runs past the end (${src.size} bytes)`);
  const prefetchTableOffset = s.u64(40, "s_prefetch_table_offset");
  let prefetchTableSize = s.u32(48, "s_prefetch_table_size");
  if (prefetchTableOffset === 0) prefetchTableSize = 0; // legacy: size without offset means none
  if (prefetchTableSize % 4 !== 0) s.fail(48, "s_prefetch_table_size", `${prefetchTableSize} is not a multiple of 4`);
  if (prefetchTableOffset + prefetchTableSize > src.size) s.fail(40, "s_prefetch_table_offset", `prefetch table runs past the end (${src.size} bytes)`);
  return { flags, blobTableOffset, blobTableSize, chunkSize, chunkTableOffset, chunkTableSize, prefetchTableOffset, prefetchTableSize };
}

/** One EROFS device slot (spec §5): the blob a device id refers to. */
export interface DeviceSlot {
  /** Blob id (ASCII, NUL padding removed). */
  tag: string;
  blocks: number;
  mappedBlkaddr: number;
}

/**
 * Parses the `extra_devices` device slots at `devt_slotoff × 128`.
 * Throws InvalidArgument for a tag that is empty or not printable ASCII, or `blocks == 0`.
 */
export function parseDeviceTable(src: ByteSource, sb: Superblock): DeviceSlot[] {
  const out: DeviceSlot[] = [];
  for (let i = 0; i < sb.extraDevices; i++) {
    const off = sb.devtSlotoff * DEVICE_SLOT_SIZE + i * DEVICE_SLOT_SIZE;
    const s: Struct = new Struct(readChecked(src, off, DEVICE_SLOT_SIZE, `device_slot[${i}]`), off, `device_slot[${i}]`);
    const tag = asciiZ(s.raw(0, 64, "tag"));
    if (!tag) s.fail(0, "tag", "empty or not printable ASCII");
    const blocks = s.u32(64, "blocks");
    if (blocks === 0) s.fail(64, "blocks", "0");
    out.push({ tag, blocks, mappedBlkaddr: s.u32(68, "mapped_blkaddr") });
  }
  return out;
}
