/**
 * EROFS directories (12-byte dirents + names, self-describing blocks) and symlink targets —
 * docs/rafs.md §9–§10.
 */
import { malformed, Struct, type ByteSource } from "./bytes.ts";
import { FileMode, flatExtents, isDir, isSymlink, readFlatData, S_IFMT, type Inode } from "./inode.ts";
import type { Superblock } from "./superblock.ts";

/** EROFS dirent file types. */
export const FileType = { UNKNOWN: 0, REG: 1, DIR: 2, CHR: 3, BLK: 4, FIFO: 5, SOCK: 6, SYMLINK: 7 } as const;

const FILE_TYPE_OF_FORMAT: Readonly<Record<number, number>> = {
  [FileMode.S_IFREG]: FileType.REG,
  [FileMode.S_IFDIR]: FileType.DIR,
  [FileMode.S_IFCHR]: FileType.CHR,
  [FileMode.S_IFBLK]: FileType.BLK,
  [FileMode.S_IFIFO]: FileType.FIFO,
  [FileMode.S_IFSOCK]: FileType.SOCK,
  [FileMode.S_IFLNK]: FileType.SYMLINK,
};

/** The dirent file type for an inode's `i_mode` (undefined for an unknown format). */
export function fileTypeOfMode(mode: number): number | undefined {
  return FILE_TYPE_OF_FORMAT[mode & S_IFMT];
}

/** One directory entry. */
export interface Dirent {
  /** Name bytes as stored (never contains `/` or NUL). */
  nameBytes: Uint8Array;
  /** Name decoded as UTF-8 (invalid sequences replaced). */
  name: string;
  nid: number;
  fileType: number;
}

const DIRENT_SIZE = 12;
const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Lists the entries of directory `inode`, including `.` and `..`, in on-disk order, across all
 * of its blocks (full blocks at `i_u`, the last one possibly inline).
 *
 * Throws InvalidArgument naming the directory nid, block and offset when: the inode is not a
 * directory or its size is 0; a block's first nameoff is not a positive multiple of 12 or
 * leaves no room for names; nameoffs are not increasing or point outside the block; a name is
 * empty, longer than 255 bytes or contains `/`; a file type is > 7.
 */
export function readDir(src: ByteSource, sb: Superblock, inode: Inode): Dirent[] {
  const what = `dir[${inode.nid}]`;
  if (!isDir(inode.mode)) throw malformed(`${what}.i_mode`, inode.offset + 4, "not a directory");
  if (inode.size === 0) throw malformed(`${what}.i_size`, inode.offset + 8, "directory of size 0");
  const extents = flatExtents(src, sb, inode);
  const data = readFlatData(src, sb, inode);
  const bs = sb.blockSize;
  // Absolute bootstrap offset of directory-data position p, so messages point at real bytes.
  const absolute = (p: number): number => {
    let skipped = 0;
    for (const e of extents) {
      if (p < skipped + e.length) return e.offset + (p - skipped);
      skipped += e.length;
    }
    return p;
  };
  const out: Dirent[] = [];
  for (let blk = 0; blk * bs < data.length; blk++) {
    const start = blk * bs;
    const block = data.subarray(start, Math.min(start + bs, data.length));
    const bwhat = `${what}.block[${blk}]`;
    const s: Struct = new Struct(block, absolute(start), bwhat);
    if (block.length < DIRENT_SIZE) s.fail(0, "dirent", `block of ${block.length} bytes cannot hold a dirent`);
    const first = s.u16(8, "nameoff");
    if (first < DIRENT_SIZE || first % DIRENT_SIZE !== 0 || first >= block.length)
      s.fail(8, "nameoff", `first nameoff ${first} is not a multiple of 12 inside the ${block.length}-byte block`);
    const count = first / DIRENT_SIZE;
    for (let i = 0; i < count; i++) {
      const d = i * DIRENT_SIZE;
      const nameoff = s.u16(d + 8, "nameoff");
      const end = i + 1 < count ? s.u16(d + DIRENT_SIZE + 8, "nameoff") : block.length;
      if (nameoff < first || end > block.length || end <= nameoff) s.fail(d + 8, "nameoff", `name [${nameoff}, ${end}) is empty or outside the names area`);
      let name = block.subarray(nameoff, end);
      // The last name of a block may be NUL padded (a partial final block is exact, padding is rare).
      const nul = name.indexOf(0);
      if (nul >= 0) name = name.subarray(0, nul);
      if (name.length === 0) s.fail(d + 8, "nameoff", "empty name");
      if (name.length > 255) s.fail(d + 8, "nameoff", `name of ${name.length} bytes exceeds 255`);
      if (name.includes(0x2f)) s.fail(nameoff, "name", "name contains '/'");
      const fileType = s.u8(d + 10, "file_type");
      if (fileType > 7) s.fail(d + 10, "file_type", `unknown file type ${fileType}`);
      const nid = s.u64(d, "nid");
      out.push({ nameBytes: name.slice(), name: decoder.decode(name), nid, fileType });
    }
  }
  return out;
}

/**
 * Reads the target of symlink `inode` (raw bytes decoded as UTF-8).
 * Throws InvalidArgument when the inode is not a symlink or its data is out of bounds.
 */
export function readSymlink(src: ByteSource, sb: Superblock, inode: Inode): string {
  if (!isSymlink(inode.mode)) throw malformed(`inode[${inode.nid}].i_mode`, inode.offset + 4, "not a symlink");
  return decoder.decode(readFlatData(src, sb, inode));
}
