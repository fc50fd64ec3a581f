/**
 * Mount-time prefetch of one instance (`fs_prefetch`, docs/nydusd.md "Prefetch"): the
 * startup working set — the files of `--prefetch-files` and of the bootstrap's prefetch
 * table, directories standing for everything below them — fetched as a few large ranges, then
 * with `prefetch_all` every blob whole.
 */
import type { Inode, RafsImage } from "../rafs/index.ts";
import type { Blobfs } from "./blobfs.ts";
import type { DaemonConfig } from "./config.ts";
import { RateLimiter } from "./rate-limit.ts";

/** Most inodes the working set is expanded to (directories walked); the rest is skipped. */
export const MAX_PREFETCH_INODES = 1 << 17;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

/** One uncompressed range of a blob. */
export interface BlobRange {
  blobId: string;
  offset: number;
  length: number;
}

/**
 * The regular files of `roots` (directories walked depth first, each inode once), at most
 * {@link MAX_PREFETCH_INODES} inodes visited. A table entry that does not parse is skipped.
 */
function filesOf(image: RafsImage, roots: Inode[]): Inode[] {
  const out: Inode[] = [];
  const seen = new Set<number>();
  const stack = [...roots].reverse();
  while (stack.length > 0 && seen.size < MAX_PREFETCH_INODES) {
    const inode = stack.pop() as Inode;
    if (seen.has(inode.nid)) continue;
    seen.add(inode.nid);
    const type = inode.mode & S_IFMT;
    if (type === S_IFREG) out.push(inode);
    else if (type === S_IFDIR) {
      const kids: Inode[] = [];
      for (const d of image.readDir(inode)) {
        if (d.name === "." || d.name === ".." || seen.has(d.nid)) continue;
        try {
          kids.push(image.inode(d.nid));
        } catch {
          // a malformed entry: not prefetched (reads report it)
        }
      }
      stack.push(...kids.reverse());
    }
  }
  return out;
}

/**
 * The blob ranges holding the working set of `image`: `paths` (those that resolve) and the
 * prefetch table's nids (a table of only the root, nydusify's default, counts as none), merged per blob where chunks are adjacent or at most `gap` bytes
 * apart, in blob order. Paths that do not resolve are skipped (returned in `missing`).
 */
export function workingSetRanges(image: RafsImage, paths: readonly string[], gap: number): { ranges: BlobRange[]; missing: string[] } {
  const roots: Inode[] = [];
  const missing: string[] = [];
  for (const p of paths) {
    try {
      roots.push(image.lookup(p));
    } catch {
      missing.push(p);
    }
  }
  // nydusify's `[root]` table means "everything": that is `prefetch_all`'s job, not a working set.
  const table = image.prefetch.length === 1 && image.prefetch[0] === image.superblock.rootNid ? [] : image.prefetch;
  for (const nid of table) {
    try {
      roots.push(image.inode(nid));
    } catch {
      // a table entry naming no inode: skipped
    }
  }
  const byBlob = new Map<number, [number, number][]>();
  for (const inode of filesOf(image, roots)) {
    for (const c of image.chunks(inode)) {
      let l = byBlob.get(c.blobIndex);
      if (!l) byBlob.set(c.blobIndex, (l = []));
      l.push([c.uncompressedOffset, c.uncompressedOffset + c.length]);
    }
  }
  const ranges: BlobRange[] = [];
  for (const [blobIndex, spans] of byBlob) {
    const blobId = image.blobs[blobIndex]?.blobId;
    if (!blobId) continue;
    spans.sort((a, b) => a[0] - b[0]);
    let cur: [number, number] | undefined;
    for (const s of spans) {
      if (cur && s[0] <= cur[1] + gap) cur[1] = Math.max(cur[1], s[1]);
      else {
        if (cur) ranges.push({ blobId, offset: cur[0], length: cur[1] - cur[0] });
        cur = [s[0], s[1]];
      }
    }
    if (cur) ranges.push({ blobId, offset: cur[0], length: cur[1] - cur[0] });
  }
  return { ranges, missing };
}

/**
 * Background prefetch of one instance: the working set ({@link workingSetRanges}) in
 * requests of up to `max(merging_size, amplify_io)` bytes, `threads_count` at a time; then,
 * with `prefetch_all`, every blob whole. All within `bandwidth_rate`; stops when `signal`
 * aborts. Demand reads never wait for it (they share fetches in flight). Best effort: paths
 * that do not resolve are logged once and skipped; failed fetches are logged by the blobfs.
 */
export async function prefetchInstance(
  image: RafsImage,
  fs: Blobfs,
  config: DaemonConfig,
  files: readonly string[],
  signal: AbortSignal,
  log: (msg: string) => void = () => {},
): Promise<void> {
  const concurrency = Math.max(1, config.prefetch.threadsCount);
  const limiter = new RateLimiter(config.prefetch.bandwidthRate);
  const requestSize = Math.max(config.prefetch.mergingSize, config.amplifyIo ?? 1 << 20);
  const { ranges, missing } = workingSetRanges(image, files, 0);
  if (missing.length > 0) log(`prefetch: ${missing.length} of ${files.length} listed paths are not in the image (first: ${missing[0]})`);
  for (const r of ranges) {
    if (signal.aborted) return;
    await fs.prefetch(r.blobId, { offset: r.offset, length: r.length, concurrency, requestSize, signal, limiter });
  }
  if (!config.prefetch.prefetchAll) return;
  for (const b of image.blobs) {
    if (signal.aborted) return;
    await fs.prefetch(b.blobId, { concurrency, signal, limiter });
  }
}
