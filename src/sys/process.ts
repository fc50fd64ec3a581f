import { readFileSync } from "node:fs";

/**
 * True while a process with this pid exists and is not a zombie (`kill(pid, 0)`, then the
 * state in `/proc/<pid>/stat`). False for pid ≤ 0 and when either check fails. The one home
 * of this check: the daemon manager and the built-in daemon's run directories both use it.
 */
export function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
