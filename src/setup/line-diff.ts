/**
 * A unified diff of two texts, line by line, so `rafsnap setup` can show what it changes
 * without needing `diff(1)` on the node. The differ is jsdiff (`diff` on npm); this module
 * only writes its hunks in `diff -u`'s shape.
 */
import { structuredPatch } from "diff";

/** A hunk range as `diff -u` writes it: `start,count`, `start` alone for one line, `start-1,0` for none. */
function range(start: number, count: number): string {
  if (count === 0) return `${Math.max(0, start - 1)},0`;
  return count === 1 ? `${start}` : `${start},${count}`;
}

/**
 * Unified diff (`diff -u` format, `context` lines around each change) from `oldText` to
 * `newText`, labelled `oldName` / `newName`. Returns "" when the texts are equal.
 * A missing final newline is not marked.
 */
export function unifiedDiff(oldText: string, newText: string, oldName: string, newName: string, context = 3): string {
  if (oldText === newText) return "";
  const patch = structuredPatch(oldName, newName, oldText, newText, undefined, undefined, { context });
  const out = [`--- ${oldName}`, `+++ ${newName}`];
  for (const h of patch.hunks) {
    out.push(`@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@`);
    for (const l of h.lines) if (!l.startsWith("\\")) out.push(l);
  }
  return `${out.join("\n")}\n`;
}
