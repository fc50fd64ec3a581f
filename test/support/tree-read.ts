// Reads a whole tree (treeManifest) in a child process. Bun reads large files on the main
// JavaScript thread, so a test that reads a FUSE tree in its own process cannot, meanwhile,
// serve anything that tree depends on (a proxy, a takeover call): the read blocks it. A child
// process keeps the test's event loop free. Run directly: `bun tree-read.ts MNT READERS OUT`.
import { readFileSync, writeFileSync } from "node:fs";
import { run } from "../harness/process.ts";
import { type PathRecord, type TreeManifest, treeManifest } from "./tree-compare.ts";

type Wire = [string, Omit<PathRecord, "mtimeNs"> & { mtimeNs: string }][];

/**
 * The manifest of `root` (see {@link treeManifest}), read by a child process with
 * `concurrency` readers. Rejects with the child's error (e.g. EIO from a file) or on timeout.
 */
export async function readTreeInChild(root: string, concurrency: number, out: string, timeoutMs = 600_000): Promise<TreeManifest> {
  const r = await run([process.execPath, import.meta.path, root, String(concurrency), out], { timeoutMs });
  if (r.code !== 0) throw new Error(`reading ${root} failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-5).join(" | ")}`);
  const wire = JSON.parse(readFileSync(out, "utf8")) as Wire;
  return new Map(wire.map(([p, rec]) => [p, { ...rec, mtimeNs: BigInt(rec.mtimeNs) }]));
}

if (import.meta.main) {
  const [root, readers, out] = process.argv.slice(2) as [string, string, string];
  const m = await treeManifest(root, { concurrency: Number(readers) });
  const wire: Wire = [...m].map(([p, rec]) => [p, { ...rec, mtimeNs: String(rec.mtimeNs) }]);
  writeFileSync(out, JSON.stringify(wire));
}
