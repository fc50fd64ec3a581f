import { existsSync } from "node:fs";
import { mountPoints, socketAccepts } from "../mount/index.ts";

/**
 * nydusd's "crashed" rule: the API socket file is still there but nobody accepts on it, and
 * the mountpoint is still mounted — or, for a shared daemon (whose instances are EROFS mounts
 * at `<mountpoint>/<id>`), something below it is. A daemon started then (like one started
 * with --upgrade) waits in INIT for `takeover` instead of mounting again.
 */
export async function predecessorCrashed(apisock: string, mountpoint: string): Promise<boolean> {
  if (!existsSync(apisock) || (await socketAccepts(apisock))) return false;
  const dir = mountpoint.replace(/\/+$/, "");
  return mountPoints().some((p) => p === dir || p.startsWith(`${dir}/`));
}
