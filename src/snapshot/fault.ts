/**
 * Fault points for crash tests: `RAFSNAP_FAULT_POINT=<name>` in the environment of
 * `rafsnap serve` makes the process SIGKILL itself when it reaches the point `<name>` —
 * exactly where a power loss or an OOM kill could stop it. Unset (always, in production), a
 * fault point costs one environment lookup.
 *
 * Points: `remove:renamed` (Remove renamed the directory to `rm-<id>`, metadata not committed).
 */
export function faultPoint(name: string): void {
  if (process.env.RAFSNAP_FAULT_POINT === name) process.kill(process.pid, "SIGKILL");
}
