// Mounts a read-only FUSE filesystem served by a FuseSession in this process, for tests.
import { closeSync, openSync } from "node:fs";
import { FuseSession, type ReadonlyFs } from "../../src/fuse/index.ts";
import { silentLogger } from "../../src/log/index.ts";
import { MountFlags, mount, umount } from "../../src/mount/index.ts";

/** A test FUSE mount: its session, and `stop()` that detaches, ends the session and closes `/dev/fuse`. */
export interface TestFuseMount {
  session: FuseSession;
  stop(): Promise<void>;
}

/**
 * Opens `/dev/fuse`, mounts it read-only at `mnt` (type `fuse.rafsnap-test`, allow_other) and
 * serves `fs` with two reader workers. `stop()` is safe to call when the mount is already gone.
 */
export function mountTestFuse(mnt: string, fs: ReadonlyFs): TestFuseMount {
  const fd = openSync("/dev/fuse", "r+");
  mount(
    "rafsnap-test",
    mnt,
    "fuse.rafsnap-test",
    MountFlags.MS_RDONLY | MountFlags.MS_NOSUID | MountFlags.MS_NODEV,
    `fd=${fd},rootmode=40000,user_id=0,group_id=0,allow_other`,
  );
  const session = FuseSession.start(fd, fs, { logger: silentLogger(), workers: 2 });
  return {
    session,
    async stop() {
      try {
        umount(mnt, 2 /* MNT_DETACH */);
      } catch {
        // already gone
      }
      await Promise.race([session.done, Bun.sleep(3000)]);
      session.stop();
      closeSync(fd);
    },
  };
}
