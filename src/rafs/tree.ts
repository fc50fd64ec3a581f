/**
 * Whole-tree walker: every path of a bootstrap with its inode, symlink target, xattrs and
 * chunks — what `rafsnap inspect` prints and what tests compare with the kernel's view.
 */
import { malformed } from "./bytes.ts";
import type { ChunkIndex } from "./chunk.ts";
import { FileType, fileTypeOfMode } from "./dir.ts";
import { isDir, isReg, isSymlink, Layout, type Inode } from "./inode.ts";
import type { RafsImage } from "./image.ts";
import type { Xattr } from "./xattr.ts";

/** One path of the tree. */
export interface TreeEntry {
  /** Absolute path; `/` for the root. */
  path: string;
  nid: number;
  inode: Inode;
  /** Set for symlinks. */
  symlink?: string;
  xattrs: Xattr[];
  /** Chunk indexes of chunk-based regular files, else []. */
  chunks: ChunkIndex[];
}

/**
 * Walks the tree depth-first from the root, children in on-disk (sorted) order, yielding the
 * root first. Hard links appear once per path with the same nid.
 *
 * Throws InvalidArgument when: a directory nid is reached twice (a cycle or a hard-linked
 * directory); more entries are seen than the bootstrap could hold (forged shared directory
 * blocks); a dirent's file type disagrees with the inode's mode; `.`/`..` are missing; or any
 * inode, directory, xattr area or chunk index array is malformed.
 */
export function* walkTree(image: RafsImage): Generator<TreeEntry> {
  const rootNid = image.superblock.rootNid;
  const seenDirs = new Set<number>([rootNid]);
  const maxEntries = Math.floor(image.src.size / 12) + 1;
  let entries = 0;
  const stack: { path: string; inode: Inode }[] = [{ path: "/", inode: image.root() }];
  while (stack.length > 0) {
    const { path, inode } = stack.pop() as { path: string; inode: Inode };
    yield describe(image, path, inode);
    if (!isDir(inode.mode)) continue;
    const dirents = image.readDir(inode);
    if (!dirents.some((d) => d.name === ".") || !dirents.some((d) => d.name === ".."))
      throw malformed(`dir[${inode.nid}]`, inode.offset, `${path} lacks . or ..`);
    const children: { path: string; inode: Inode }[] = [];
    for (const d of dirents) {
      if (d.name === "." || d.name === "..") continue;
      if (++entries > maxEntries)
        throw malformed(`dir[${inode.nid}]`, inode.offset, `more than ${maxEntries} entries in a ${image.src.size}-byte bootstrap (looping directory blocks?)`);
      const child = image.inode(d.nid);
      const want = fileTypeOfMode(child.mode);
      if (d.fileType !== FileType.UNKNOWN && d.fileType !== want)
        throw malformed(`dir[${inode.nid}].${d.name}.file_type`, inode.offset, `${d.fileType} disagrees with inode ${d.nid} mode 0${child.mode.toString(8)}`);
      if (isDir(child.mode)) {
        if (seenDirs.has(d.nid))
          throw malformed(`dir[${inode.nid}].${d.name}.nid`, inode.offset, `directory nid ${d.nid} reached twice (cycle or hard-linked directory)`);
        seenDirs.add(d.nid);
      }
      children.push({ path: path === "/" ? `/${d.name}` : `${path}/${d.name}`, inode: child });
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as { path: string; inode: Inode });
  }
}

function describe(image: RafsImage, path: string, inode: Inode): TreeEntry {
  return {
    path,
    nid: inode.nid,
    inode,
    symlink: isSymlink(inode.mode) ? image.readSymlink(inode) : undefined,
    xattrs: image.xattrs(inode),
    chunks: isReg(inode.mode) && inode.layout === Layout.CHUNK_BASED ? image.chunks(inode) : [],
  };
}

/** {@link walkTree} collected into an array. */
export function listTree(image: RafsImage): TreeEntry[] {
  return [...walkTree(image)];
}
