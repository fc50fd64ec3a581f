/**
 * Disk usage of a directory tree, measured the way containerd measures an active snapshot's
 * upper directory (`fs.DiskUsage` in containerd/continuity, `fs/du_unix.go`).
 */
import type { BigIntStats } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { ErrorKind, RafsnapError, internal, notFound } from "../errdefs/index.ts";

/** What {@link diskUsage} measured. */
export interface DiskUsageResult {
  /** Allocated bytes: the sum of `st_blocks * 512` over distinct inodes. */
  readonly size: number;
  /** Number of distinct inodes (device + inode number), the root included. */
  readonly inodes: number;
}

/** Options of {@link diskUsage}. */
export interface DiskUsageOptions {
  /** Stops the walk; the promise then rejects with a Canceled error. */
  readonly signal?: AbortSignal;
  /**
   * Skip entries on another device than `dir` (like `du -x`) and do not descend into them.
   * Off by default, as in containerd, which counts everything below the root, mounts included.
   */
  readonly oneFileSystem?: boolean;
}

/** lstat calls in flight at once within one directory. */
const LSTAT_BATCH = 128;
/** `st_blocks` is in 512-byte units on Linux whatever the filesystem block size (stat(2)). */
const BLOCK_UNIT = 512n;

/**
 * Measures `dir` like containerd's `fs.DiskUsage`: walks the tree with `lstat` (symlinks are
 * counted as themselves and never followed), counts each inode once by (st_dev, st_ino), so
 * hard links count once, and sums `st_blocks * 512`. The allocated size is counted, not the
 * apparent size, so sparse files count only their allocated blocks. `dir` itself is counted; if it
 * is a file or a symlink, only it is measured.
 *
 * The walk is iterative (no recursion, whatever the depth) and file names are handled as
 * bytes, so names that are not UTF-8 (possible in image layers) are measured too. A directory
 * reached twice (a bind mount of an ancestor) is not walked again. Unlike containerd, entries
 * that vanish while the walk runs (ENOENT/ENOTDIR below the root) are skipped rather than
 * failing the whole measurement: an active snapshot may be changing while it is measured.
 *
 * @throws RafsnapError NotFound when `dir` does not exist; Canceled when `signal` aborts;
 *   Internal for any other filesystem error (EACCES, ELOOP, ENAMETOOLONG for paths longer
 *   than PATH_MAX…), with the path and the original error as `cause`.
 */
export async function diskUsage(dir: string, options: DiskUsageOptions = {}): Promise<DiskUsageResult> {
  const { signal, oneFileSystem = false } = options;
  const seen = new Set<string>();
  let blocks = 0n;
  /** Counts `st` if its inode is new; true when it was. */
  const count = (st: BigIntStats): boolean => {
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return false;
    seen.add(key);
    blocks += st.blocks;
    return true;
  };

  const rootPath = Buffer.from(dir);
  let root: BigIntStats;
  try {
    root = await lstat(rootPath, { bigint: true });
  } catch (err) {
    if (errnoCode(err) === "ENOENT") throw notFound(`disk usage: ${dir} does not exist`, err);
    throw wrap(dir, rootPath, err);
  }
  count(root);

  const pending: Buffer[] = root.isDirectory() ? [rootPath] : [];
  const slash = Buffer.from("/");
  while (pending.length > 0) {
    checkAborted(dir, signal);
    const current = pending.pop()!;
    let names: Buffer[];
    try {
      names = await readdir(current, { encoding: "buffer" });
    } catch (err) {
      if (current !== rootPath && isVanished(err)) continue;
      throw wrap(dir, current, err);
    }
    const prefix = Buffer.concat([current, slash]);
    for (let i = 0; i < names.length; i += LSTAT_BATCH) {
      checkAborted(dir, signal);
      const batch = names.slice(i, i + LSTAT_BATCH).map(async (name) => {
        const path = Buffer.concat([prefix, name]);
        try {
          return { path, st: await lstat(path, { bigint: true }) };
        } catch (err) {
          if (isVanished(err)) return undefined;
          throw wrap(dir, path, err);
        }
      });
      for (const entry of await Promise.all(batch)) {
        if (entry === undefined) continue;
        if (oneFileSystem && entry.st.dev !== root.dev) continue;
        if (count(entry.st) && entry.st.isDirectory()) pending.push(entry.path);
      }
    }
  }
  return { size: Number(blocks * BLOCK_UNIT), inodes: seen.size };
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function isVanished(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "ENOENT" || code === "ENOTDIR";
}

function wrap(dir: string, path: Buffer, err: unknown): RafsnapError {
  const detail = errnoCode(err) ?? (err instanceof Error ? err.message : String(err));
  return internal(`disk usage of ${dir}: ${path.toString()}: ${detail}`, err);
}

function checkAborted(dir: string, signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new RafsnapError(ErrorKind.Canceled, `disk usage of ${dir}: canceled`, { cause: signal.reason });
  }
}
