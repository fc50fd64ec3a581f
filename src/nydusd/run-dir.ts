/**
 * Where a daemon's blobfs lives, and the reaping of blobfs mounts whose daemon is gone: the one
 * home of the `<run root>/nydusd-<pid>/blobfs` layout and of the blobfs mount type.
 *
 * A daemon keeps its blobfs (one FUSE mount serving every blob it reads) in
 * `<run root>/nydusd-<pid>/blobfs`, the run root being `RAFSNAP_RUN_DIR` (the snapshotter gives
 * each daemon id its own). A failover successor serves its predecessor's blobfs where it is, so
 * the pid in a path is the pid of the daemon that mounted it, not always of the one serving it.
 */
import { readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Logger } from "../log/index.ts";
import { abortFuseConnection, mountEntries, UmountFlags, umount } from "../mount/index.ts";
import { pidAlive } from "../sys/index.ts";

/** The FUSE type of a blobfs mount (`fuse.` + its subtype). */
export const BLOBFS_FSTYPE = "fuse.rafsnap-blobfs";

/** The run directory of the daemon with `pid` under `runRoot`. */
export function daemonRunDir(runRoot: string, pid: number): string {
  return join(runRoot, `nydusd-${pid}`);
}

/** The blobfs mount point inside a daemon's run directory. */
export function blobfsDir(runDir: string): string {
  return join(runDir, "blobfs");
}

/** The pid in a run directory's name (`nydusd-<pid>`), or undefined for any other name. */
function runDirPid(name: string): number | undefined {
  const m = name.match(/^nydusd-(\d+)$/);
  return m ? Number(m[1]) : undefined;
}

/**
 * The pid of the daemon that mounted `mountPoint` when it is a blobfs directly in a run
 * directory under `runRoot` (`<runRoot>/nydusd-<pid>/blobfs`); undefined otherwise.
 */
export function blobfsOwnerPid(runRoot: string, mountPoint: string): number | undefined {
  const runDir = dirname(mountPoint);
  if (basename(mountPoint) !== "blobfs" || dirname(runDir) !== runRoot.replace(/\/+$/, "")) return undefined;
  return runDirPid(basename(runDir));
}

/** Whether a pid is a live process: one home, src/sys/process.ts. */
export { pidAlive };

/**
 * Detaches the blobfs mounts under `runRoot` that no live daemon serves: mounted by a daemon
 * whose pid is gone, and not `keep` (the blobfs the caller serves, perhaps a predecessor's).
 * Each one's FUSE connection is aborted first, so nothing that waits on it (a reader, `sync`)
 * hangs, then the mount is detached and its run directory removed. Returns the mount points
 * reaped; failures are logged, not thrown.
 */
export function reapDeadBlobfs(runRoot: string, log: Logger, keep?: string): string[] {
  const reaped: string[] = [];
  for (const e of mountEntries()) {
    if (e.fsType !== BLOBFS_FSTYPE || e.mountPoint === keep) continue;
    const pid = blobfsOwnerPid(runRoot, e.mountPoint);
    if (pid === undefined || pidAlive(pid)) continue;
    abortFuseConnection(e.minor);
    try {
      umount(e.mountPoint, UmountFlags.MNT_DETACH);
    } catch (err) {
      log.warn(`blobfs ${e.mountPoint} of a daemon that is gone: umount: ${(err as Error).message}`);
      continue;
    }
    rmSync(join(e.mountPoint, ".."), { recursive: true, force: true });
    log.info(`reaped the blobfs of daemon pid ${pid}, which is gone (${e.mountPoint}; its FUSE connection aborted)`);
    reaped.push(e.mountPoint);
  }
  return reaped;
}

/** Run directories under `runRoot` of daemons that are gone and hold no mount (for cleanup). */
export function deadRunDirs(runRoot: string): string[] {
  let names: string[];
  try {
    names = readdirSync(runRoot);
  } catch {
    return [];
  }
  const mounted = new Set(mountEntries().map((e) => e.mountPoint));
  return names
    .filter((n) => {
      const pid = runDirPid(n);
      return pid !== undefined && !pidAlive(pid) && !mounted.has(blobfsDir(join(runRoot, n)));
    })
    .map((n) => join(runRoot, n));
}

/**
 * Clears run directory `dir` of a daemon the snapshotter no longer records (its vestiges could
 * not be cleared, or a crash came in between): the blobfs mounts of daemons that are gone are
 * reaped ({@link reapDeadBlobfs}); true when every entry left is a dead daemon's run directory
 * holding no mount, so that `dir` may be removed. Throws the file system's error when `dir`
 * cannot be read.
 */
export function reapOrphanRunDir(dir: string, log: Logger): boolean {
  reapDeadBlobfs(dir, log);
  return deadRunDirs(dir).length === readdirSync(dir).length;
}
