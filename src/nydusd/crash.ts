import { existsSync } from "node:fs";
import { isMountpoint, socketAccepts } from "../mount/index.ts";

/**
 * nydusd's "crashed" rule: the API socket file is still there but nobody accepts on it, and
 * the mountpoint is still mounted. A daemon started then (like one started with --upgrade)
 * waits in INIT for `takeover` instead of mounting again.
 */
export async function predecessorCrashed(apisock: string, mountpoint: string): Promise<boolean> {
  return existsSync(apisock) && !(await socketAccepts(apisock)) && isMountpoint(mountpoint);
}
