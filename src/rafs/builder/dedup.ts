/**
 * Image-wide chunk dedup for a merged bootstrap: a chunk of an upper layer whose content
 * (digest and size) some lower layer's blob already holds is pointed at that lower copy, so
 * a container reads — fetches, caches — each distinct chunk once, whichever layers repeat it
 * (a `chmod -R` or copied-again file is the common case). Blobs are not rewritten: every
 * layer's blob stays a function of its own layer (docs/rafs.md), an upper blob only holds
 * bytes nobody reads any more, and a blob no file references drops out of the image's blob
 * table as unused blobs always do.
 */
import type { ChunkRef } from "./blob-writer.ts";
import { type FileInode, isRegNode, type TreeNode } from "./tree.ts";

const keyOf = (c: ChunkRef) => `${Buffer.from(c.digest).toString("hex")}:${c.uncompressedSize}`;

/** Every regular file's inode under `root` (directories walked depth first), each once. */
function* fileInodes(root: TreeNode): Generator<FileInode> {
  const seen = new Set<FileInode>();
  const stack = [root];
  for (let n = stack.pop(); n; n = stack.pop()) {
    if (n.children) stack.push(...n.children.values());
    else if (isRegNode(n) && !seen.has(n.inode)) {
      seen.add(n.inode);
      yield n.inode;
    }
  }
}

/**
 * Re-points the chunks of the merged tree `root` at the first copy of the same content in
 * `layers` (lower → upper, the layer trees `root` was merged from; the lowest wins).
 * `root`'s directories must belong to the merge (they are changed in place: a file node whose
 * chunks move is replaced by a copy with a new inode, hard-link groups kept together); the
 * layer trees are not modified. Returns how many chunk references moved.
 */
export function dedupChunks(root: TreeNode, layers: readonly TreeNode[]): number {
  const first = new Map<string, ChunkRef>();
  for (const layer of layers) {
    for (const inode of fileInodes(layer)) {
      for (const c of inode.chunks) {
        const k = keyOf(c);
        if (!first.has(k)) first.set(k, c);
      }
    }
  }
  let moved = 0;
  const replaced = new Map<FileInode, FileInode>();
  const remap = (inode: FileInode): FileInode => {
    let out = replaced.get(inode);
    if (out) return out;
    let changed = false;
    const chunks = inode.chunks.map((c) => {
      const canon = first.get(keyOf(c)) ?? c;
      if (canon !== c && (canon.blob !== c.blob || canon.ciIndex !== c.ciIndex)) {
        changed = true;
        moved++;
        return canon;
      }
      return c;
    });
    out = changed ? { ...inode, chunks } : inode;
    replaced.set(inode, out);
    return out;
  };
  const stack = [root];
  for (let n = stack.pop(); n; n = stack.pop()) {
    if (!n.children) continue;
    for (const [name, child] of n.children) {
      if (child.children) stack.push(child);
      else if (isRegNode(child)) {
        const inode = remap(child.inode);
        if (inode !== child.inode) n.children.set(name, { ...child, inode });
      }
    }
  }
  return moved;
}
