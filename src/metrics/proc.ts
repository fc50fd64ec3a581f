import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** What `/proc/<pid>` tells about a process. */
export interface ProcessStats {
  /** Resident set size (VmRSS), in KiB. */
  rssKb: number;
  threads: number;
  /** Open file descriptors; undefined when `/proc/<pid>/fd` cannot be listed. */
  fds: number | undefined;
}

/**
 * Reads `/proc/<pid>/status` (VmRSS, Threads) and counts `/proc/<pid>/fd`. Undefined when the
 * process is gone or its status cannot be read (a zombie has no VmRSS: undefined too).
 */
export function processStats(pid: number | "self"): ProcessStats | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status);
    return m ? Number(m[1]) : undefined;
  };
  const rssKb = field("VmRSS");
  if (rssKb === undefined) return undefined;
  let fds: number | undefined;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {}
  return { rssKb, threads: field("Threads") ?? 0, fds };
}

/**
 * Disk space (allocated blocks, as `du` counts them) of everything under `dir`, in KiB,
 * without following links. Entries that vanish while it walks are skipped; 0 when `dir`
 * does not exist.
 */
export function diskUsageKb(dir: string): number {
  let bytes = 0;
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      try {
        const st = lstatSync(p);
        bytes += st.blocks * 512;
        if (st.isDirectory()) walk(p);
      } catch {}
    }
  };
  walk(dir);
  return bytes / 1024;
}
