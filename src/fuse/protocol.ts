/**
 * The FUSE kernel protocol (Linux `include/uapi/linux/fuse.h`, protocol 7.x): opcodes, the
 * request and reply headers, and encoders for the structures a read-only filesystem sends.
 * All integers are little-endian host order (x86-64 and arm64).
 */

/** Request opcodes rafsnap handles or must know about. */
export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  READDIRPLUS: 44,
  LSEEK: 46,
  STATX: 52,
} as const;

/** `fuse_in_header` size. */
export const IN_HEADER = 40;
/** `fuse_out_header` size. */
export const OUT_HEADER = 16;
/** `fuse_attr` size. */
export const ATTR_SIZE = 88;

/** INIT flags we use (fuse.h `FUSE_*`). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  /** Direct I/O requests may be submitted asynchronously (several in flight per file). */
  ASYNC_DIO: 1 << 15,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  INIT_EXT: 1 << 30,
} as const;

/** `FOPEN_DIRECT_IO`: reads of the file bypass the kernel's page cache for it. */
export const FOPEN_DIRECT_IO = 1 << 0;
/** `FOPEN_KEEP_CACHE`: keep the page cache of a file across opens (content never changes). */
export const FOPEN_KEEP_CACHE = 1 << 1;

/** A decoded request header. */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

/** Decodes `fuse_in_header` at the start of `buf`. */
export function decodeInHeader(buf: Uint8Array): InHeader {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    len: v.getUint32(0, true),
    opcode: v.getUint32(4, true),
    unique: v.getBigUint64(8, true),
    nodeid: v.getBigUint64(16, true),
    uid: v.getUint32(24, true),
    gid: v.getUint32(28, true),
    pid: v.getUint32(32, true),
  };
}

/** A reply: `fuse_out_header` (len, -errno, unique) followed by `body`. */
export function encodeReply(unique: bigint, errno: number, body?: Uint8Array): Uint8Array {
  const len = OUT_HEADER + (errno === 0 && body ? body.length : 0);
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  v.setUint32(0, len, true);
  v.setInt32(4, errno === 0 ? 0 : -Math.abs(errno), true);
  v.setBigUint64(8, unique, true);
  if (errno === 0 && body) out.set(body, OUT_HEADER);
  return out;
}

/** Attributes of one inode as the filesystem reports them. */
export interface Attr {
  ino: bigint;
  size: number;
  /** File type and permission bits (`st_mode`). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  rdev?: number;
  /** 512-byte blocks; defaults to size rounded up. */
  blocks?: number;
}

function putAttr(v: DataView, off: number, a: Attr): void {
  v.setBigUint64(off, a.ino, true);
  v.setBigUint64(off + 8, BigInt(a.size), true);
  v.setBigUint64(off + 16, BigInt(a.blocks ?? Math.ceil(a.size / 512)), true);
  const t = BigInt(Math.max(0, Math.floor(a.mtime)));
  v.setBigUint64(off + 24, t, true); // atime
  v.setBigUint64(off + 32, t, true); // mtime
  v.setBigUint64(off + 40, t, true); // ctime
  v.setUint32(off + 60, a.mode, true);
  v.setUint32(off + 64, a.nlink, true);
  v.setUint32(off + 68, a.uid, true);
  v.setUint32(off + 72, a.gid, true);
  v.setUint32(off + 76, a.rdev ?? 0, true);
  v.setUint32(off + 80, 4096, true); // blksize
}

/** `fuse_entry_out` (LOOKUP reply): node id = ino, generation 0, cache times in seconds. */
export function encodeEntry(a: Attr, ttlSeconds: number): Uint8Array {
  const out = new Uint8Array(40 + ATTR_SIZE);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, a.ino, true);
  v.setBigUint64(16, BigInt(ttlSeconds), true);
  v.setBigUint64(24, BigInt(ttlSeconds), true);
  putAttr(v, 40, a);
  return out;
}

/** `fuse_attr_out` (GETATTR reply). */
export function encodeAttrOut(a: Attr, ttlSeconds: number): Uint8Array {
  const out = new Uint8Array(16 + ATTR_SIZE);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(ttlSeconds), true);
  putAttr(v, 16, a);
  return out;
}

/** `fuse_open_out`: file handle and open flags. */
export function encodeOpenOut(fh: bigint, openFlags: number): Uint8Array {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, fh, true);
  v.setUint32(8, openFlags, true);
  return out;
}

/** One directory entry for READDIR. */
export interface DirEntry {
  name: string;
  ino: bigint;
  /** `DT_*` type (4 dir, 8 reg, 10 lnk, 2 chr, 6 blk, 1 fifo). */
  type: number;
}

const enc = new TextEncoder();

/**
 * Packs `entries` from index `start` as `fuse_dirent`s (each 24 bytes + name, padded to 8)
 * into at most `max` bytes; each entry's `off` is the index of the next one, which the
 * kernel sends back as the offset of the following READDIR.
 */
export function encodeDirents(entries: DirEntry[], start: number, max: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let i = start; i < entries.length; i++) {
    const e = entries[i] as DirEntry;
    const name = enc.encode(e.name);
    const size = (24 + name.length + 7) & ~7;
    if (total + size > max) break;
    const rec = new Uint8Array(size);
    const v = new DataView(rec.buffer);
    v.setBigUint64(0, e.ino, true);
    v.setBigUint64(8, BigInt(i + 1), true);
    v.setUint32(16, name.length, true);
    v.setUint32(20, e.type, true);
    rec.set(name, 24);
    parts.push(rec);
    total += size;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `fuse_statfs_out` for a read-only filesystem of `blocks` 4 KiB blocks and `files` inodes. */
export function encodeStatfs(blocks: number, files: number): Uint8Array {
  const out = new Uint8Array(80);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(blocks), true);
  v.setBigUint64(24, BigInt(files), true);
  v.setUint32(40, 4096, true); // bsize
  v.setUint32(44, 255, true); // namelen
  v.setUint32(48, 4096, true); // frsize
  return out;
}

/**
 * `fuse_init_out` for protocol 7.`minor`: our flags (those the kernel offered), the largest
 * read in pages (`maxPages`, with MAX_PAGES) and the readahead the kernel asked for.
 */
export function encodeInitOut(minor: number, maxReadahead: number, flags: number, maxPages: number): Uint8Array {
  const out = new Uint8Array(64);
  const v = new DataView(out.buffer);
  v.setUint32(0, 7, true);
  v.setUint32(4, minor, true);
  v.setUint32(8, maxReadahead, true);
  v.setUint32(12, flags >>> 0, true);
  v.setUint16(16, 16, true); // max_background
  v.setUint16(18, 12, true); // congestion_threshold
  v.setUint32(20, 128 * 1024, true); // max_write (read-only fs: unused)
  v.setUint32(24, 1, true); // time_gran
  v.setUint16(28, maxPages, true);
  return minor >= 23 ? out : out.subarray(0, 24);
}
