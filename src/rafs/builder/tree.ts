/**
 * The builder's in-memory file tree, and building it from the entries of one OCI layer tar
 * (docs/rafs.md §20): absolute paths, synthesized parents, `./` sets the root's metadata,
 * later entries replace earlier ones, hard links share their target's inode. Whiteouts are
 * kept as ordinary entries here; {@link mergeTrees} (merge.ts) applies them.
 */
import { invalidArgument } from "../../errdefs/index.ts";
import { FileMode, S_IFMT } from "../inode.ts";
import type { ChunkRef } from "./blob-writer.ts";
import { xattrIndex } from "../xattr.ts";

/**
 * What an inode holds. Several {@link TreeNode}s sharing one object form a hard-link group;
 * layer trees never share objects with each other, so hard links never join across layers.
 */
export interface FileInode {
  /** Full st_mode (type bits + permissions). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (whole seconds; fractions dropped). */
  mtime: number;
  /** Nanoseconds of the mtime; tar-rafs always writes 0 (absent = 0). */
  mtimeNsec?: number;
  /** Regular files: data size; other types: 0 (directories/symlinks get theirs when written). */
  size: number;
  /** Full xattr names → values. */
  xattrs: Map<string, Uint8Array>;
  /** Symlink target bytes. */
  symlink?: Uint8Array;
  rdevMajor: number;
  rdevMinor: number;
  /** Regular files: one entry per FS chunk, in file order. */
  chunks: ChunkRef[];
}

/** A path of the tree: a name, its inode, and (directories) its children by name. */
export interface TreeNode {
  /** Name bytes (UTF-8); empty for the root. */
  name: Uint8Array;
  inode: FileInode;
  /** Present exactly for directories. */
  children?: Map<string, TreeNode>;
  /** True for directories made up because a deeper path needed them (§19.2 quirk). */
  synthesized?: boolean;
}

/** The subset of a tar entry header the builder reads (structurally `TarHeader` of src/convert/tar.ts). */
export interface LayerEntryHeader {
  /** Normalised relative path: no leading `/` or `./`, no trailing `/`; "" for the root. */
  path: string;
  type: "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** Symlink target, or the (normalised) path of a hard link's target. */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, Uint8Array>;
  /** Byte offset of the header in the tar, for messages. */
  offset?: number;
}

/** One layer entry: header and streamed content (read fully for regular files). */
export interface LayerEntry {
  header: LayerEntryHeader;
  body: AsyncIterable<Uint8Array>;
}

const enc = new TextEncoder();
const TYPE_BITS: Readonly<Record<LayerEntryHeader["type"], number>> = {
  file: FileMode.S_IFREG,
  link: FileMode.S_IFREG,
  symlink: FileMode.S_IFLNK,
  char: FileMode.S_IFCHR,
  block: FileMode.S_IFBLK,
  dir: FileMode.S_IFDIR,
  fifo: FileMode.S_IFIFO,
};

/** Paths tar-rafs ignores (§20). */
const IGNORED = new Set(["stargz.index.json", ".prefetch.landmark", ".no.prefetch.landmark"]);

/**
 * True when {@link LayerTreeBuilder.add} stores the body of entry `h` (it returns an inode
 * for it, unless it throws): a regular file with data, not at the root, not a path tar-rafs
 * ignores. Lets a thread without the tree decide which bodies to cut into chunks.
 */
export function storesData(h: LayerEntryHeader): boolean {
  if (h.type !== "file" || h.size <= 0) return false;
  const parts = h.path.split("/").filter((p) => p !== "" && p !== ".");
  return parts.length > 1 || (parts.length === 1 && !IGNORED.has(parts[0] as string));
}

/** A new directory inode with nydus's synthesized defaults (040755, uid/gid 0, mtime 0). */
export function syntheticDir(name: Uint8Array): TreeNode {
  return {
    name,
    inode: { mode: FileMode.S_IFDIR | 0o755, uid: 0, gid: 0, mtime: 0, size: 0, xattrs: new Map(), rdevMajor: 0, rdevMinor: 0, chunks: [] },
    children: new Map(),
    synthesized: true,
  };
}

/** True when `n` is a directory node. */
export const isDirNode = (n: TreeNode): boolean => n.children !== undefined;
/** True when `n` is a regular file. */
export const isRegNode = (n: TreeNode): boolean => (n.inode.mode & S_IFMT) === FileMode.S_IFREG;

/**
 * Builds the tree of one layer, entry by entry. `add` returns the inode whose chunks the
 * caller must fill from the entry's body (regular files with data), else undefined.
 */
export class LayerTreeBuilder {
  readonly root: TreeNode = syntheticDir(new Uint8Array(0));
  /** Last regular-file node per path, for hard-link targets. */
  private readonly files = new Map<string, TreeNode>();

  /**
   * Adds one entry. Throws InvalidArgument naming the entry's path when: a hard link's target
   * is not an earlier regular file (the message names both paths); a parent on the path is not
   * a directory; the entry type is unknown; an xattr name is not one EROFS can store
   * (user., trusted., security., system.posix_acl_*) or a name or value is too long.
   */
  add(h: LayerEntryHeader): FileInode | undefined {
    const at = h.offset === undefined ? "" : ` (tar byte ${h.offset})`;
    const parts = h.path.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.length === 1 && IGNORED.has(parts[0] as string)) return undefined;
    const typeBits = TYPE_BITS[h.type];
    if (typeBits === undefined) throw invalidArgument(`rafs builder: /${h.path}${at}: unsupported tar entry type ${String(h.type)}`);
    if (parts.length === 0) {
      // `./`: the root's metadata (its children stay).
      if (h.type !== "dir") throw invalidArgument(`rafs builder: tar entry for the root${at} is a ${h.type}, not a directory`);
      this.root.inode = this.inodeOf(h, typeBits);
      this.root.synthesized = false;
      return undefined;
    }
    const path = `/${parts.join("/")}`;
    const parent = this.parentOf(parts, path, at);
    const name = parts.at(-1) as string;
    const existing = parent.children?.get(name);
    if (h.type === "link") {
      const target = this.files.get(
        `/${h.linkname
          .split("/")
          .filter((p) => p !== "" && p !== ".")
          .join("/")}`,
      );
      if (!target) throw invalidArgument(`rafs builder: hard link ${path}${at} points to /${h.linkname}, which is not an earlier regular file in the layer`);
      const node: TreeNode = { name: enc.encode(name), inode: target.inode };
      parent.children?.set(name, node);
      this.files.set(path, node);
      return undefined;
    }
    const inode = this.inodeOf(h, typeBits);
    if (h.type === "dir") {
      const node: TreeNode = { name: enc.encode(name), inode, children: existing?.children ?? new Map() };
      parent.children?.set(name, node);
      this.files.delete(path);
      return undefined;
    }
    const node: TreeNode = { name: enc.encode(name), inode };
    parent.children?.set(name, node);
    if (h.type === "file") {
      this.files.set(path, node);
      return h.size > 0 ? inode : undefined;
    }
    this.files.delete(path);
    return undefined;
  }

  private parentOf(parts: string[], path: string, at: string): TreeNode {
    let cur = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i] as string;
      let next = cur.children?.get(p);
      if (!next) {
        next = syntheticDir(enc.encode(p));
        cur.children?.set(p, next);
      }
      if (!next.children) throw invalidArgument(`rafs builder: ${path}${at}: parent /${parts.slice(0, i + 1).join("/")} is not a directory`);
      cur = next;
    }
    return cur;
  }

  private inodeOf(h: LayerEntryHeader, typeBits: number): FileInode {
    const xattrs = new Map<string, Uint8Array>();
    for (const [k, v] of Object.entries(h.xattrs)) {
      if (enc.encode(k).length > 255 || v.length > 65535)
        throw invalidArgument(`rafs builder: /${h.path}: xattr ${k} has a name over 255 bytes or a value over 64 KiB`);
      xattrIndex(k);
      xattrs.set(k, v);
    }
    const special = h.type === "char" || h.type === "block";
    return {
      mode: typeBits | (h.mode & 0o7777),
      uid: h.uid,
      gid: h.gid,
      mtime: Math.floor(h.mtime),
      size: h.type === "file" ? h.size : 0,
      xattrs,
      symlink: h.type === "symlink" ? enc.encode(h.linkname) : undefined,
      rdevMajor: special ? h.devmajor : 0,
      rdevMinor: special ? h.devminor : 0,
      chunks: [],
    };
  }
}
