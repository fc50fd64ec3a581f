/**
 * Writes a RAFS v6 bootstrap from a builder tree (docs/rafs.md §2–§14): superblocks,
 * device slots, blob table, prefetch table, inodes (all extended, as tar-rafs and merge write
 * them) with inline xattrs, directories, inline/plain symlinks, chunk indexes and the chunk
 * info table, laid out by the §14 algorithm so that equal input gives nydus's bytes.
 */
import { invalidArgument } from "../../errdefs/index.ts";
import { alignUp, concat } from "../bytes.ts";
import { BlobFeatures, type Compressor, type Digester } from "../blob-table.ts";
import { FileType, fileTypeOfMode } from "../dir.ts";
import { FileMode, Layout, S_IFMT } from "../inode.ts";
import { EROFS_MAGIC, FEATURE_COMPAT_RAFS_V6, FEATURE_INCOMPAT_CHUNKED_FILE, FEATURE_INCOMPAT_DEVICE_TABLE, RafsFlags } from "../superblock.ts";
import { xattrIndex } from "../xattr.ts";
import type { BlobInfo, ChunkRef } from "./blob-writer.ts";
import { isDirNode, isRegNode, type FileInode, type TreeNode } from "./tree.ts";

/** Options of {@link writeBootstrap}. */
export interface BootstrapOptions {
  chunkSize: number;
  compressor: Compressor;
  digester: Digester;
  /** Merged image bootstrap: HAS_XATTR always set, INLINED_FS_META cleared from blob features. */
  merged: boolean;
  /** Write the `[root nid]` prefetch table nydusify asks for with `/` (default true). */
  prefetchRoot?: boolean;
  /**
   * Absolute paths whose nids make the prefetch table, in this order (directories stand for
   * everything below them); paths the tree lacks are left out. Replaces the `[root]` table;
   * an empty or wholly missing list writes none.
   */
  prefetch?: readonly string[];
}

const BS = 4096;
const INODE_SIZE = 64;
/** Device-slot "flat device" alignment (§5). */
const MAPPED_ALIGN = 0x80000;

const enc = new TextEncoder();

/** The inline xattr area of an inode (12-byte header + entries), or empty. */
function xattrArea(x: ReadonlyMap<string, Uint8Array>): Uint8Array {
  if (x.size === 0) return new Uint8Array(0);
  const parts: Uint8Array[] = [new Uint8Array(12)];
  for (const [name, value] of x) {
    const [index, suffix] = xattrIndex(name);
    const s = enc.encode(suffix);
    const e = new Uint8Array(alignUp(4 + s.length + value.length, 4));
    e[0] = s.length;
    e[1] = index;
    new DataView(e.buffer).setUint16(2, value.length, true);
    e.set(s, 4);
    e.set(value, 4 + s.length);
    parts.push(e);
  }
  return concat(parts);
}

/** Children sorted by raw name bytes (§9, §14). */
function sortedChildren(n: TreeNode): TreeNode[] {
  return [...(n.children?.values() ?? [])].sort((a, b) => Buffer.compare(a.name, b.name));
}

/** Directory data size for these names (always including `.` and `..`), per §9 packing. */
function direntSize(names: readonly Uint8Array[]): number {
  let closed = 0;
  let used = 0;
  for (const n of names) {
    const cost = 12 + n.length;
    if (used + cost > BS) {
      closed++;
      used = 0;
    }
    used += cost;
  }
  return closed * BS + used;
}

/** Encodes sorted dirents into blocks (each block's bytes, the last one possibly partial). */
function direntBlocks(entries: readonly { name: Uint8Array; nid: number; type: number }[]): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  let group: (typeof entries)[number][] = [];
  let used = 0;
  const close = (full: boolean) => {
    const b = new Uint8Array(full ? BS : used);
    const v = new DataView(b.buffer);
    let nameoff = group.length * 12;
    group.forEach((e, i) => {
      v.setBigUint64(i * 12, BigInt(e.nid), true);
      v.setUint16(i * 12 + 8, nameoff, true);
      b[i * 12 + 10] = e.type;
      b.set(e.name, nameoff);
      nameoff += e.name.length;
    });
    blocks.push(b);
  };
  for (const e of entries) {
    const cost = 12 + e.name.length;
    if (used + cost > BS) {
      close(true);
      group = [];
      used = 0;
    }
    group.push(e);
    used += cost;
  }
  close(false);
  return blocks;
}

/** The free-slot allocator and sequential position of §14. */
class MetaAllocator {
  pos = BS;
  private readonly queues: number[][] = Array.from({ length: BS / 32 }, () => []);

  register(p: number): void {
    const r = p % BS;
    if (r !== 0) (this.queues[Math.floor((BS - r) / 32)] as number[]).push(p - r);
  }
  free(size: number): number | undefined {
    if (size >= BS) return undefined;
    const need = Math.ceil(size / 32);
    for (let k = need; k < BS / 32; k++) {
      const b = (this.queues[k] as number[]).shift();
      if (b === undefined) continue;
      const start = b + BS - 32 * k;
      this.register(start + need * 32);
      return start;
    }
    return undefined;
  }
  seq(size: number): number {
    const at = this.pos;
    this.pos += size;
    return at;
  }
  align(a: number): void {
    this.pos = alignUp(this.pos, a);
  }
}

/** Where one inode went. */
interface Placed {
  inode: FileInode;
  ino: number;
  /** Meta-space offset of the inode. */
  offset: number;
  layout: Layout;
  xattrs: Uint8Array;
  /** Meta-space offset of the first full data block (dirs, symlinks). */
  dataOffset: number;
  /** Directory/symlink data size. */
  dataSize: number;
  nlink: number;
  node: TreeNode;
  parent?: Placed;
}

/**
 * Serialises `root` into bootstrap bytes.
 *
 * Blob indexes are assigned in first-use order of a breadth-first walk (children sorted by
 * name bytes); blobs no chunk uses are left out. Hard links are nodes sharing a
 * {@link FileInode}: written once, every name points at it, nlink = number of names.
 *
 * Blob fields are read as they are at call time, so call it after the blobs' streams ended
 * (or, for an inline bootstrap, from {@link BlobWriter.finish}'s callback).
 *
 * Throws InvalidArgument naming the path for an xattr name nydus cannot store, a symlink
 * target over 4096 bytes or a uid/gid that does not fit 32 bits, and when more than 254
 * blobs are referenced.
 */
export function writeBootstrap(root: TreeNode, opts: BootstrapOptions): Uint8Array {
  const { chunkSize } = opts;
  // 1. Breadth-first walk: blob order, hard-link group sizes, chunk table (last visit wins).
  const blobs: BlobInfo[] = [];
  const blobIndex = new Map<BlobInfo, number>();
  const links = new Map<FileInode, number>();
  const chunkTable = new Map<string, { c: ChunkRef; fileOffset: number }>();
  let anyXattr = false;
  const queue: TreeNode[] = [root];
  for (let qi = 0; qi < queue.length; qi++) {
    const n = queue[qi] as TreeNode;
    if (n.inode.xattrs.size > 0) anyXattr = true;
    if (isDirNode(n)) queue.push(...sortedChildren(n));
    if (!isRegNode(n)) continue;
    links.set(n.inode, (links.get(n.inode) ?? 0) + 1);
    n.inode.chunks.forEach((c, k) => {
      if (!blobIndex.has(c.blob)) {
        blobIndex.set(c.blob, blobs.length);
        blobs.push(c.blob);
      }
      chunkTable.set(`${Buffer.from(c.digest).toString("hex")}:${(blobIndex.get(c.blob) as number).toString(16).padStart(8, "0")}`, {
        c,
        fileOffset: k * chunkSize,
      });
    });
  }
  if (blobs.length >= 255) throw invalidArgument(`rafs builder: ${blobs.length} blobs; at most 254 fit in EROFS device ids`);

  // 2. Layout (§14).
  const alloc = new MetaAllocator();
  const placed = new Map<FileInode, Placed>();
  const order: Placed[] = [];
  let ino = 1;
  const place = (node: TreeNode, myIno: number, parent: Placed | undefined, path: string): Placed => {
    const xattrs = xattrArea(node.inode.xattrs);
    const I = INODE_SIZE + xattrs.length;
    const p: Placed = { inode: node.inode, ino: myIno, offset: 0, layout: Layout.FLAT_PLAIN, xattrs, dataOffset: 0, dataSize: 0, nlink: 1, node, parent };
    const type = node.inode.mode & S_IFMT;
    if (node.inode.uid > 0xffffffff || node.inode.gid > 0xffffffff)
      throw invalidArgument(`rafs builder: ${path}: uid/gid ${node.inode.uid}/${node.inode.gid} does not fit in 32 bits`);
    if (isDirNode(node) || type === FileMode.S_IFLNK) {
      if (isDirNode(node)) p.dataSize = direntSize([enc.encode("."), enc.encode(".."), ...sortedChildren(node).map((c) => c.name)]);
      else p.dataSize = node.inode.symlink?.length ?? 0;
      if (!isDirNode(node) && p.dataSize > 4096) throw invalidArgument(`rafs builder: ${path}: symlink target of ${p.dataSize} bytes exceeds 4096`);
      const D = p.dataSize;
      const tail = D % BS;
      if (tail !== 0 && I + tail <= BS) {
        let off = alloc.free(I + tail);
        if (off === undefined) {
          if (BS - (alloc.pos % BS) < I + tail) {
            alloc.register(alloc.pos);
            alloc.align(BS);
          }
          off = alloc.seq(I + tail);
        }
        if (D !== tail) {
          alloc.register(alloc.pos);
          alloc.align(BS);
        }
        p.offset = off;
        p.dataOffset = alloc.pos;
        alloc.pos += Math.floor(D / BS) * BS;
        p.layout = Layout.FLAT_INLINE;
      } else {
        p.offset = alloc.free(I) ?? alloc.seq(I);
        alloc.register(alloc.pos);
        alloc.align(BS);
        p.dataOffset = alloc.pos;
        alloc.pos += D;
        alloc.align(BS);
      }
    } else if (type === FileMode.S_IFREG) {
      const size = alignUp(I, 8) + 8 * Math.ceil(node.inode.size / chunkSize);
      p.offset = alloc.free(size) ?? alloc.seq(size);
      p.layout = Layout.CHUNK_BASED;
      p.nlink = links.get(node.inode) ?? 1;
    } else {
      p.offset = alloc.seq(I);
    }
    alloc.align(32);
    placed.set(node.inode, p);
    order.push(p);
    return p;
  };
  const build = (dir: TreeNode, self: Placed, path: string) => {
    const kids = sortedChildren(dir);
    const subdirs: [TreeNode, number][] = [];
    for (const child of kids) {
      const childIno = ++ino;
      const cpath = `${path === "/" ? "" : path}/${Buffer.from(child.name).toString()}`;
      if (isDirNode(child)) subdirs.push([child, childIno]);
      else if (!placed.has(child.inode)) place(child, childIno, self, cpath);
    }
    self.nlink = 2 + subdirs.length;
    for (const [child, childIno] of subdirs) {
      const cpath = `${path === "/" ? "" : path}/${Buffer.from(child.name).toString()}`;
      build(child, place(child, childIno, self, cpath), cpath);
    }
  };
  build(root, place(root, 1, undefined, "/"), "/");
  const table = prefetchNids(root, opts);

  // 3. Fixed areas.
  const n = blobs.length;
  const blobTableOffset = alignUp(1408 + 128 * n, BS);
  const prefetch = n > 0 && table.length > 0;
  const prefetchOffset = prefetch ? blobTableOffset + 256 * n : 0;
  const M = n > 0 ? alignUp(blobTableOffset + 256 * n + (prefetch ? 4 * table.length : 0), BS) : 0;
  const chunkTableOffset = alignUp(M + alloc.pos, BS);
  const chunks = [...chunkTable.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const size = alignUp(chunkTableOffset + 80 * chunks.length, BS);
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  const u64 = (at: number, x: number) => v.setBigUint64(at, BigInt(x), true);
  const nid = (p: Placed) => p.offset / 32;

  const blocks = blobs.map((b) => Math.floor(b.uncompressedSize / BS));
  v.setUint32(1024, EROFS_MAGIC, true);
  v.setUint32(1024 + 8, FEATURE_COMPAT_RAFS_V6, true);
  out[1024 + 12] = 12;
  v.setUint16(1024 + 14, nid(placed.get(root.inode) as Placed), true);
  u64(1024 + 16, ino);
  v.setUint32(
    1024 + 36,
    blocks.reduce((a, b) => a + b, 0),
    true,
  );
  v.setUint32(1024 + 40, M / BS, true);
  v.setUint32(1024 + 80, FEATURE_INCOMPAT_CHUNKED_FILE | FEATURE_INCOMPAT_DEVICE_TABLE, true);
  v.setUint16(1024 + 86, n, true);
  v.setUint16(1024 + 88, 11, true);

  const COMP_FLAG: Readonly<Record<Compressor, number>> = {
    none: RafsFlags.COMPRESSION_NONE,
    lz4_block: RafsFlags.COMPRESSION_LZ4,
    gzip: RafsFlags.COMPRESSION_GZIP,
    zstd: RafsFlags.COMPRESSION_ZSTD,
  };
  const flags =
    COMP_FLAG[opts.compressor] |
    (opts.digester === "blake3" ? RafsFlags.HASH_BLAKE3 : RafsFlags.HASH_SHA256) |
    RafsFlags.EXPLICIT_UID_GID |
    (opts.merged || anyXattr ? RafsFlags.HAS_XATTR : 0) |
    RafsFlags.INLINED_CHUNK_DIGEST |
    RafsFlags.ENCRYPTION_NONE;
  u64(1152, flags);
  u64(1152 + 8, blobTableOffset);
  v.setUint32(1152 + 16, 256 * n, true);
  v.setUint32(1152 + 20, chunkSize, true);
  u64(1152 + 24, chunkTableOffset);
  u64(1152 + 32, 80 * chunks.length);
  if (prefetch) {
    u64(1152 + 40, prefetchOffset);
    v.setUint32(1152 + 48, 4 * table.length, true);
    table.forEach((node, i) => v.setUint32(prefetchOffset + 4 * i, nid(placed.get(node.inode) as Placed), true));
  }

  let mapped = size;
  blobs.forEach((b, i) => {
    const slot = 1408 + 128 * i;
    out.set(enc.encode(b.blobId), slot);
    v.setUint32(slot + 64, blocks[i] as number, true);
    const m = alignUp(mapped, MAPPED_ALIGN) / BS;
    v.setUint32(slot + 68, m, true);
    mapped = (m + (blocks[i] as number)) * BS;
    writeBlobEntry(out, blobTableOffset + 256 * i, b, i, opts.merged);
  });

  // 4. Inodes and their data.
  for (const p of order) writeInode(out, p, M, chunkSize, blobIndex, placed);

  // 5. Chunk table.
  chunks.forEach(([, { c, fileOffset }], i) => {
    const at = chunkTableOffset + 80 * i;
    out.set(c.digest, at);
    v.setUint32(at + 32, blobIndex.get(c.blob) as number, true);
    v.setUint32(at + 36, (c.compressed ? 0x1 : 0) | 0x10, true);
    v.setUint32(at + 40, c.compressedSize, true);
    v.setUint32(at + 44, c.uncompressedSize, true);
    u64(at + 48, c.compressedOffset);
    u64(at + 56, c.uncompressedOffset);
    u64(at + 64, fileOffset);
    v.setUint32(at + 72, c.ciIndex, true);
    v.setUint32(at + 76, c.crc32, true);
  });
  return out;
}

const ALGO: Readonly<Record<Compressor, number>> = { none: 0, lz4_block: 1, gzip: 2, zstd: 3 };

function writeBlobEntry(out: Uint8Array, at: number, b: BlobInfo, index: number, merged: boolean): void {
  const v = new DataView(out.buffer);
  const u64 = (o: number, x: number) => v.setBigUint64(at + o, BigInt(x), true);
  out.set(enc.encode(b.blobId), at);
  v.setUint32(at + 64, index, true);
  v.setUint32(at + 68, b.chunkSize, true);
  v.setUint32(at + 72, b.chunkCount, true);
  v.setUint32(at + 76, ALGO[b.compressor], true);
  v.setUint32(at + 80, b.digester === "blake3" ? 0 : 1, true);
  v.setUint32(at + 84, merged ? b.features & ~BlobFeatures.INLINED_FS_META : b.features, true);
  u64(88, b.compressedSize);
  u64(96, b.uncompressedSize);
  v.setUint32(at + 104, b.blobTocSize, true);
  v.setUint32(at + 108, ALGO[b.ciCompressor], true);
  u64(112, b.ciOffset);
  u64(120, b.ciCompressedSize);
  u64(128, b.ciUncompressedSize);
  if (b.blobTocDigest) out.set(b.blobTocDigest, at + 136);
}

/** Linux `new_encode_dev`. */
const encodeDev = (major: number, minor: number) => ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;

function writeInode(
  out: Uint8Array,
  p: Placed,
  M: number,
  chunkSize: number,
  blobIndex: ReadonlyMap<BlobInfo, number>,
  placed: ReadonlyMap<FileInode, Placed>,
): void {
  const v = new DataView(out.buffer);
  const at = M + p.offset;
  const i = p.inode;
  const type = i.mode & S_IFMT;
  let size = 0;
  let u = 0;
  if (isDirNode(p.node) || type === FileMode.S_IFLNK) {
    size = p.dataSize;
    u = Math.floor((p.dataOffset + M) / BS);
    let data: Uint8Array[];
    if (isDirNode(p.node)) {
      const entries = [
        { name: enc.encode("."), nid: p.offset / 32, type: FileType.DIR },
        { name: enc.encode(".."), nid: (p.parent ?? p).offset / 32, type: FileType.DIR },
        ...sortedChildren(p.node).map((c) => ({ name: c.name, nid: (placed.get(c.inode) as Placed).offset / 32, type: fileTypeOfMode(c.inode.mode) ?? 0 })),
      ].sort((a, b) => Buffer.compare(a.name, b.name));
      data = direntBlocks(entries);
    } else {
      const t = i.symlink ?? new Uint8Array(0);
      data = [];
      for (let o = 0; o < t.length; o += BS) data.push(t.subarray(o, o + BS));
    }
    data.forEach((blk, k) => {
      const inline = p.layout === Layout.FLAT_INLINE && k === data.length - 1;
      out.set(blk, inline ? at + INODE_SIZE + p.xattrs.length : M + p.dataOffset + k * BS);
    });
  } else if (type === FileMode.S_IFREG) {
    size = i.size;
    const cs = i.chunks;
    let C = chunkSize;
    const first = cs[0];
    const continuous =
      first !== undefined &&
      i.size > chunkSize &&
      cs.every((c, k) => c.blob === first.blob && c.uncompressedOffset === first.uncompressedOffset + k * chunkSize);
    if (continuous) C = 2 ** Math.ceil(Math.log2(i.size));
    u = 0x20 | (Math.log2(C) - 12);
    const idx = alignUp(at + INODE_SIZE + p.xattrs.length, 8);
    cs.forEach((c, k) => {
      const o = idx + 8 * k;
      v.setUint16(o, c.ciIndex & 0xffff, true);
      v.setUint16(o + 2, ((blobIndex.get(c.blob) as number) + 1) | ((c.ciIndex >>> 16) << 8), true);
      v.setUint32(o + 4, c.uncompressedOffset / BS, true);
    });
  } else if (type === FileMode.S_IFCHR || type === FileMode.S_IFBLK) {
    u = encodeDev(i.rdevMajor, i.rdevMinor);
  }
  v.setUint16(at, (p.layout << 1) | 1, true);
  v.setUint16(at + 2, p.xattrs.length ? (p.xattrs.length - 12) / 4 + 1 : 0, true);
  v.setUint16(at + 4, i.mode, true);
  v.setBigUint64(at + 8, BigInt(size), true);
  v.setUint32(at + 16, u, true);
  v.setUint32(at + 20, p.ino, true);
  v.setUint32(at + 24, i.uid, true);
  v.setUint32(at + 28, i.gid, true);
  v.setBigUint64(at + 32, BigInt(Math.max(0, i.mtime)), true);
  v.setUint32(at + 40, i.mtimeNsec ?? 0, true);
  v.setUint32(at + 44, p.nlink, true);
  out.set(p.xattrs, at + INODE_SIZE);
}

/**
 * The nodes of the prefetch table: `opts.prefetch` resolved in the tree (missing paths and
 * repeats of one inode left out), else `[root]` unless `prefetchRoot` is false.
 */
function prefetchNids(root: TreeNode, opts: BootstrapOptions): TreeNode[] {
  if (!opts.prefetch) return (opts.prefetchRoot ?? true) ? [root] : [];
  const out: TreeNode[] = [];
  const seen = new Set<FileInode>();
  for (const path of opts.prefetch) {
    let node: TreeNode | undefined = root;
    for (const part of path.split("/").filter((p) => p !== "")) {
      node = node?.children?.get(part);
      if (!node) break;
    }
    if (!node || seen.has(node.inode)) continue;
    seen.add(node.inode);
    out.push(node);
  }
  return out;
}
