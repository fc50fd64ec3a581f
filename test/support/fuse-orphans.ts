// What a crashed daemon may leave behind, for the crash tests: blobfs mounts of daemons that are
// gone and FUSE connections that nobody serves.
import { fuseConnections, isFuseMount, mountEntries } from "../../src/mount/index.ts";
import { BLOBFS_FSTYPE, blobfsOwnerPid, pidAlive } from "../../src/nydusd/index.ts";

/**
 * Orphans, as readable strings (none: []): blobfs mounts under `runRoot` whose daemon (the pid
 * in `nydusd-<pid>/blobfs`) is gone, and FUSE connections with requests waiting that belong
 * to no mount in mountinfo (nobody can serve or unmount them: they block `sync`).
 */
export function orphanFuse(runRoot: string): string[] {
  const out: string[] = [];
  const mounts = mountEntries();
  for (const e of mounts) {
    if (e.fsType !== BLOBFS_FSTYPE) continue;
    const pid = blobfsOwnerPid(runRoot, e.mountPoint);
    if (pid !== undefined && !pidAlive(pid)) out.push(`blobfs ${e.mountPoint} of dead pid ${pid} is still mounted`);
  }
  const mounted = new Set(mounts.filter(isFuseMount).map((e) => e.minor));
  for (const c of fuseConnections()) {
    if (c.waiting > 0 && !mounted.has(c.id)) out.push(`FUSE connection ${c.id} has ${c.waiting} waiting requests and no mount`);
  }
  return out;
}
