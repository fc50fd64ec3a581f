/**
 * Overlay merge of layer trees, lower → upper (docs/rafs.md §19.2, nydus
 * `merge_overaly`): per directory, `.wh..wh..opq` clears the lower children and `.wh.<name>`
 * removes lower `<name>`; whiteout entries themselves are never added; an upper
 * non-directory replaces the lower node and its subtree; an upper directory takes over the
 * metadata and keeps the lower children, merged recursively. The root is the top layer's.
 */
import type { TreeNode } from "./tree.ts";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** A copy of the directory structure of `n`; inodes (and so hard-link groups) are shared. */
function cloneTree(n: TreeNode): TreeNode {
  if (!n.children) return n;
  const children = new Map<string, TreeNode>();
  for (const [k, c] of n.children) if (!k.startsWith(WHITEOUT)) children.set(k, cloneTree(c));
  return { ...n, children };
}

/** Applies upper directory `upper` onto `lower` (a clone owned by the merge), in place. */
function mergeDir(lower: TreeNode, upper: TreeNode): void {
  const lc = lower.children as Map<string, TreeNode>;
  const uc = upper.children as Map<string, TreeNode>;
  if (uc.has(OPAQUE)) lc.clear();
  for (const name of uc.keys()) if (name.startsWith(WHITEOUT) && name !== OPAQUE) lc.delete(name.slice(WHITEOUT.length));
  for (const [name, u] of uc) {
    if (name.startsWith(WHITEOUT)) continue;
    const l = lc.get(name);
    if (u.children && l?.children) {
      const merged: TreeNode = { ...u, children: l.children };
      mergeDir(merged, u);
      lc.set(name, merged);
    } else {
      lc.set(name, cloneTree(u));
    }
  }
}

/**
 * Merges layer trees given lower → upper into one tree; the inputs are not modified.
 * Hard links stay within their layer: nodes share an inode only if they did in one layer.
 * Whiteouts in a layer apply only to the layers below it. Returns the merged root; with no
 * layers, throws nothing and returns undefined.
 */
export function mergeTrees(layers: readonly TreeNode[]): TreeNode | undefined {
  const [first, ...rest] = layers;
  if (!first) return undefined;
  let root = cloneTree(first);
  for (const upper of rest) {
    const next: TreeNode = { ...upper, children: root.children };
    mergeDir(next, upper);
    root = next;
  }
  return root;
}
