/**
 * EROFS inodes as written by nydus (compact 32 B / extended 64 B) — docs/rafs.md §7, plus the
 * location of flat (non-chunked) data: directory blocks, symlink targets, inline tails.
 */
import { malformed, readChecked, Struct, type ByteSource } from "./bytes.ts";
import type { Superblock } from "./superblock.ts";

/** Data layouts (i_format bits 1–3) this reader accepts. */
export const Layout = { FLAT_PLAIN: 0, FLAT_INLINE: 2, CHUNK_BASED: 4 } as const;
/** One of {@link Layout}. */
export type Layout = (typeof Layout)[keyof typeof Layout];

/** File type bits of `st_mode`. */
export const S_IFMT = 0o170000;
/** Mode type constants. */
export const FileMode = {
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  S_IFREG: 0o100000,
  S_IFBLK: 0o060000,
  S_IFDIR: 0o040000,
  S_IFCHR: 0o020000,
  S_IFIFO: 0o010000,
} as const;

/** A decoded inode. */
export interface Inode {
  nid: number;
  /** Absolute byte offset of the inode in the bootstrap. */
  offset: number;
  extended: boolean;
  /** 32 or 64. */
  inodeSize: number;
  layout: Layout;
  xattrIcount: number;
  /** Bytes of the inline xattr area (0, or 12 + 4·(icount − 1)). */
  xattrSize: number;
  mode: number;
  nlink: number;
  size: number;
  /** The raw i_u union: first data block, chunk format, or encoded rdev. */
  u: number;
  /** Builder-assigned inode number (informational). */
  ino: number;
  uid: number;
  gid: number;
  /** Seconds; 0 for compact inodes. */
  mtime: number;
  mtimeNsec: number;
  /** Device number for char/block devices (decoded from i_u), else 0. */
  rdevMajor: number;
  rdevMinor: number;
}

/** Absolute byte offset of inode `nid`. */
export function inodeOffset(sb: Superblock, nid: number): number {
  return sb.metaBlkaddr * sb.blockSize + nid * 32;
}

/** True for a regular file. */
export const isReg = (mode: number) => (mode & S_IFMT) === FileMode.S_IFREG;
/** True for a directory. */
export const isDir = (mode: number) => (mode & S_IFMT) === FileMode.S_IFDIR;
/** True for a symlink. */
export const isSymlink = (mode: number) => (mode & S_IFMT) === FileMode.S_IFLNK;
/** True for a char or block device. */
export const isDevice = (mode: number) => (mode & S_IFMT) === FileMode.S_IFCHR || (mode & S_IFMT) === FileMode.S_IFBLK;

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(FileMode));

/**
 * Reads and validates inode `nid`.
 *
 * Throws InvalidArgument naming `inode[nid]` and the field when: the inode or its xattr area
 * reaches past the end of the bootstrap; i_format has bits beyond 0–3 or a compressed layout
 * (1, 3) or an unknown one; the mode has no known file type; a chunk-based inode is not a
 * regular file; a symlink is longer than 4096 bytes; the size exceeds 2^53.
 */
export function parseInode(src: ByteSource, sb: Superblock, nid: number): Inode {
  const what = `inode[${nid}]`;
  if (!Number.isSafeInteger(nid) || nid < 0) throw malformed(what, 0, "invalid nid");
  const offset = inodeOffset(sb, nid);
  const head: Struct = new Struct(readChecked(src, offset, 2, `${what}.i_format`), offset, what);
  const format = head.u16(0, "i_format");
  if (format & ~0xf) head.fail(0, "i_format", `unsupported bits 0x${format.toString(16)}`);
  const extended = (format & 1) === 1;
  const layout = (format >> 1) & 7;
  if (layout !== Layout.FLAT_PLAIN && layout !== Layout.FLAT_INLINE && layout !== Layout.CHUNK_BASED) {
    head.fail(0, "i_format", `data layout ${layout} is not supported (compressed or unknown)`);
  }
  const inodeSize = extended ? 64 : 32;
  const s: Struct = new Struct(readChecked(src, offset, inodeSize, what), offset, what);
  const xattrIcount = s.u16(2, "i_xattr_icount");
  const xattrSize = xattrIcount ? 12 + 4 * (xattrIcount - 1) : 0;
  if (offset + inodeSize + xattrSize > src.size) s.fail(2, "i_xattr_icount", `xattr area of ${xattrSize} bytes runs past the end (${src.size} bytes)`);
  const mode = s.u16(4, "i_mode");
  if (!KNOWN_TYPES.has(mode & S_IFMT)) s.fail(4, "i_mode", `unknown file type in mode 0${mode.toString(8)}`);
  if (layout === Layout.CHUNK_BASED && !isReg(mode)) s.fail(0, "i_format", `chunk-based layout on a non-regular file (mode 0${mode.toString(8)})`);
  const u = s.u32(16, "i_u");
  const size = extended ? s.u64(8, "i_size") : s.u32(8, "i_size");
  if (isSymlink(mode) && size > 4096) s.fail(8, "i_size", `symlink target of ${size} bytes exceeds 4096`);
  const dev = isDevice(mode) ? u : 0;
  return {
    nid,
    offset,
    extended,
    inodeSize,
    layout: layout as Layout,
    xattrIcount,
    xattrSize,
    mode,
    nlink: extended ? s.u32(44, "i_nlink") : s.u16(6, "i_nlink"),
    size,
    u,
    ino: s.u32(20, "i_ino"),
    uid: extended ? s.u32(24, "i_uid") : s.u16(24, "i_uid"),
    gid: extended ? s.u32(28, "i_gid") : s.u16(26, "i_gid"),
    mtime: extended ? s.u64(32, "i_mtime") : 0,
    mtimeNsec: extended ? s.u32(40, "i_mtime_nsec") : 0,
    // Linux new_decode_dev.
    rdevMajor: (dev & 0xfff00) >>> 8,
    rdevMinor: (dev & 0xff) | ((dev >>> 12) & 0xfff00),
  };
}

/** A byte range of the bootstrap holding part of an inode's flat data. */
export interface Extent {
  offset: number;
  length: number;
}

/**
 * Where the flat data (directory blocks, symlink target, flat regular file) of `inode` lives:
 * full blocks at `(i_u + i) × bs`, and for FLAT_INLINE the tail right after the inode and xattrs.
 *
 * Throws InvalidArgument when the inode is chunk-based, when any extent reaches past the end of
 * the bootstrap (which also bounds forged sizes), or when an inline tail crosses a block
 * boundary (the kernel rejects that too).
 */
export function flatExtents(src: ByteSource, sb: Superblock, inode: Inode): Extent[] {
  const what = `inode[${inode.nid}]`;
  if (inode.layout === Layout.CHUNK_BASED) throw malformed(`${what}.i_format`, inode.offset, "chunk-based inode has no flat data");
  const bs = sb.blockSize;
  const size = inode.size;
  if (size > src.size) throw malformed(`${what}.i_size`, inode.offset + 8, `${size} bytes of flat data cannot fit in a ${src.size}-byte bootstrap`);
  const nblocks = Math.ceil(size / bs);
  const inline = inode.layout === Layout.FLAT_INLINE && nblocks > 0;
  const full = inline ? nblocks - 1 : nblocks;
  const out: Extent[] = [];
  if (full > 0) {
    const start = inode.u * bs;
    const len = inline ? full * bs : size;
    if (start + len > src.size)
      throw malformed(`${what}.i_u`, inode.offset + 16, `data blocks [${start}, ${start + len}) run past the end (${src.size} bytes)`);
    // Blocks before the meta area hold superblock/tables; nid-space data never lives there.
    if (start < sb.metaBlkaddr * bs && sb.isRafs) throw malformed(`${what}.i_u`, inode.offset + 16, `data block ${inode.u} lies before the meta area`);
    out.push({ offset: start, length: len });
  }
  if (inline) {
    const tail = size - full * bs;
    const at = inode.offset + inode.inodeSize + inode.xattrSize;
    if (Math.floor(at / bs) !== Math.floor((at + tail - 1) / bs))
      throw malformed(`${what}.i_size`, inode.offset + 8, `inline tail of ${tail} bytes at ${at} crosses a block boundary`);
    if (at + tail > src.size) throw malformed(`${what}.i_size`, inode.offset + 8, `inline tail runs past the end (${src.size} bytes)`);
    out.push({ offset: at, length: tail });
  }
  return out;
}

/**
 * Reads the whole flat data of `inode` (see {@link flatExtents} for failure modes). The
 * allocation is bounded by the bootstrap size because every extent was checked first.
 */
export function readFlatData(src: ByteSource, sb: Superblock, inode: Inode): Uint8Array {
  const extents = flatExtents(src, sb, inode);
  const out = new Uint8Array(inode.size);
  let pos = 0;
  for (const e of extents) {
    out.set(readChecked(src, e.offset, e.length, `inode[${inode.nid}].data`), pos);
    pos += e.length;
  }
  return out;
}
