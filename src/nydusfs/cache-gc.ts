import { blobCachesIn, removeCacheFiles } from "../cache/index.ts";
import type { Logger } from "../log/index.ts";

/** Counters of the blob cache GC (§8), read by the metrics collector. */
export interface GcStats {
  inUse: number;
  deleted: number;
  deletionErrors: number;
  skippedRounds: number;
}

/**
 * One round of the blob cache GC (§8): removes, through `src/cache` (the one owner of the
 * cache file names and their removal order), the cache files of every blob in `cacheDir`
 * that is not in `used`. Counts into `stats`; an unreadable cache directory or a file that
 * cannot be removed is logged (and counted), never thrown.
 */
export function collectBlobCaches(cacheDir: string, used: ReadonlySet<string>, stats: GcStats, log: Logger): void {
  stats.inUse = used.size;
  let byBlob: Map<string, string[]>;
  try {
    byBlob = blobCachesIn(cacheDir);
  } catch (e) {
    log.warn(`cache GC: ${(e as Error).message}`);
    return;
  }
  let stale = 0;
  for (const [id, files] of byBlob) {
    if (used.has(id)) continue;
    stale++;
    try {
      removeCacheFiles(cacheDir, files);
      stats.deleted++;
    } catch (e) {
      stats.deletionErrors++;
      log.warn(`cache GC: removing blob ${id}: ${(e as Error).message}`);
    }
  }
  if (stale) log.info(`cache GC removed ${stale} blob(s); ${used.size} in use`);
}
