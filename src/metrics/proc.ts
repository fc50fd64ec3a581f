import { readdirSync, readFileSync } from "node:fs";

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
