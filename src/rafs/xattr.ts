/**
 * EROFS extended attributes: the inline ibody (header, shared ids, inline entries) and shared
 * xattr entries — docs/rafs.md §8 (nydus writes only inline ones; shared ones are read for
 * completeness, as mkfs.erofs writes them).
 */
import { invalidArgument } from "../errdefs/index.ts";
import { malformed, readChecked, Struct, type ByteSource } from "./bytes.ts";
import type { Inode } from "./inode.ts";
import type { Superblock } from "./superblock.ts";

/** EROFS name index → prefix. Index 0 and long prefixes (bit 0x80) are not supported. */
export const XATTR_PREFIXES: Readonly<Record<number, string>> = {
  1: "user.",
  2: "system.posix_acl_access",
  3: "system.posix_acl_default",
  4: "trusted.",
  5: "lustre.",
  6: "security.",
};

/**
 * xattr name → [EROFS name index, suffix], for writing (the inverse of {@link XATTR_PREFIXES}
 * for the names nydus writes: `user.`, `trusted.`, `security.` and the two POSIX ACLs, which
 * are whole names with an empty suffix). Throws InvalidArgument for any other name.
 */
export function xattrIndex(name: string): [number, string] {
  for (const [i, p] of Object.entries(XATTR_PREFIXES)) {
    if (p === "lustre.") continue;
    if (p.endsWith(".") ? name.startsWith(p) && name.length > p.length : name === p) return [Number(i), name.slice(p.length)];
  }
  throw invalidArgument(`rafs builder: xattr ${name}: only user., trusted., security. and system.posix_acl_* names are allowed`);
}

/** One extended attribute; `name` is the full name (prefix + suffix). */
export interface Xattr {
  name: string;
  value: Uint8Array;
  /** True when it came from the shared xattr area. */
  shared: boolean;
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** Parses one entry at `off` of `buf` (absolute offset `base + off`); returns the entry and the next aligned offset. */
function entryAt(buf: Uint8Array, off: number, base: number, what: string, shared: boolean): { x: Xattr; next: number } {
  if (off + 4 > buf.length) throw malformed(`${what}.entry`, base + off, "entry header runs past the xattr area");
  const s: Struct = new Struct(buf.subarray(off), base + off, what);
  const nameLen = s.u8(0, "e_name_len");
  const index = s.u8(1, "e_name_index");
  const valueSize = s.u16(2, "e_value_size");
  const prefix = XATTR_PREFIXES[index];
  if (prefix === undefined) s.fail(1, "e_name_index", `unsupported name index ${index}`);
  const end = 4 + nameLen + valueSize;
  if (off + end > buf.length) s.fail(0, "e_name_len", `entry of ${end} bytes runs past the xattr area`);
  const name = prefix + decoder.decode(s.raw(4, nameLen, "e_name"));
  if (nameLen === 0 && index !== 2 && index !== 3) s.fail(0, "e_name_len", "empty name suffix");
  return { x: { name, value: s.raw(4 + nameLen, valueSize, "e_value").slice(), shared }, next: off + Math.ceil(end / 4) * 4 };
}

/**
 * Reads the xattrs of `inode`: shared ones (ids in the ibody header, entries at
 * `xattr_blkaddr × bs + id × 4`) first, then inline entries.
 *
 * Throws InvalidArgument naming the inode, field and offset when the shared count does not fit
 * in the area, a shared id points past the end, an entry runs past its area, or a name index is
 * unknown (including EROFS long-prefix indexes).
 */
export function readXattrs(src: ByteSource, sb: Superblock, inode: Inode): Xattr[] {
  if (inode.xattrSize === 0) return [];
  const what = `inode[${inode.nid}].xattr`;
  const base = inode.offset + inode.inodeSize;
  const area = readChecked(src, base, inode.xattrSize, what);
  const h: Struct = new Struct(area, base, what);
  const sharedCount = h.u8(4, "h_shared_count");
  if (12 + 4 * sharedCount > area.length) h.fail(4, "h_shared_count", `${sharedCount} shared ids do not fit in ${area.length} bytes`);
  const out: Xattr[] = [];
  for (let i = 0; i < sharedCount; i++) {
    const id = h.u32(12 + 4 * i, `h_shared_xattrs[${i}]`);
    const at = sb.xattrBlkaddr * sb.blockSize + id * 4;
    if (at + 4 > src.size) h.fail(12 + 4 * i, `h_shared_xattrs[${i}]`, `shared xattr at ${at} is past the end (${src.size} bytes)`);
    // A shared entry is at most 4 + 255 + 65535 bytes; read what exists, then bound-check inside.
    const buf = readChecked(src, at, Math.min(src.size - at, 4 + 255 + 65535), `${what}.shared`);
    out.push(entryAt(buf, 0, at, `${what}.shared[${i}]`, true).x);
  }
  let off = 12 + 4 * sharedCount;
  while (off < area.length) {
    const { x, next } = entryAt(area, off, base, what, false);
    out.push(x);
    off = next;
  }
  return out;
}
