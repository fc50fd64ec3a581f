// A CPU load for tests and benchmarks that must hold "while the node's CPUs are busy".
import { availableParallelism } from "node:os";
import { type ChildProcess, spawnProcess } from "./process.ts";

/** Busy processes started by {@link startCpuLoad}. */
export interface CpuLoad {
  /** How many busy processes were started. */
  readonly count: number;
  /** How many of them have ended (0 while the load holds). */
  ended(): number;
  /** Stops them (by their own PIDs). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Keeps every core busy: one `sha256sum /dev/zero` per core (`count` to override), each a
 * process of our own, stopped by PID with {@link CpuLoad.stop}. The caller registers that with
 * its cleanup so the load never outlives the test.
 */
export function startCpuLoad(count = availableParallelism()): CpuLoad {
  const procs: ChildProcess[] = [];
  for (let i = 0; i < count; i++) procs.push(spawnProcess({ cmd: ["sha256sum", "/dev/zero"], logFile: "/dev/null", stopTimeoutMs: 1000 }));
  return {
    count,
    ended: () => procs.filter((p) => p.hasExited()).length,
    async stop() {
      await Promise.all(procs.map((p) => p.stop()));
    },
  };
}
