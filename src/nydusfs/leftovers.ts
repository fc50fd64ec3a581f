import type { Logger } from "../log/index.ts";
import { mountPoints, UmountFlags, umountAsync } from "../mount/index.ts";

/**
 * Detaches every mount at or below `dir` (found in /proc/self/mountinfo), deepest first: the
 * safety net before a snapshot directory is deleted, so `rm -rf` never walks into a mounted
 * image. Each detach is logged; a failed one is logged too, never thrown.
 */
export async function unmountUnder(dir: string, log: Logger): Promise<void> {
  const doomed = mountPoints()
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .reverse();
  for (const p of doomed) {
    log.warn(`detaching ${p}, still mounted under a snapshot directory being removed`);
    await umountAsync(p, UmountFlags.MNT_DETACH).catch((e) => log.warn(`umount ${p}: ${(e as Error).message}`));
  }
}
