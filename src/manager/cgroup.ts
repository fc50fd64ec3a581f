import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CgroupConfig } from "../config/index.ts";
import { invalidArgument } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";

const UNITS: Record<string, number> = { B: 1, Ki: 1024, KiB: 1024, Mi: 1024 ** 2, MiB: 1024 ** 2, Gi: 1024 ** 3, GiB: 1024 ** 3, Ti: 1024 ** 4, TiB: 1024 ** 4, Pi: 1024 ** 5, PiB: 1024 ** 5 };

/**
 * `[cgroup] memory_limit` in bytes: "" → undefined (no limit); a byte count; a size with a
 * binary unit; or a percentage of `totalBytes`. InvalidArgument for anything else (the config
 * check refuses those already).
 */
export function memoryLimitBytes(limit: string, totalBytes: number): number | undefined {
  if (limit === "") return undefined;
  const m = limit.match(/^([\d.eE+-]+)(B|Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB|Pi|PiB|%)?$/);
  const n = m ? Number(m[1]) : Number.NaN;
  if (!m || !Number.isFinite(n) || n < 0) throw invalidArgument(`[cgroup] memory_limit ${JSON.stringify(limit)} is not a size`);
  if (m[2] === "%") return Math.floor((totalBytes * n) / 100);
  return Math.floor(n * (m[2] ? (UNITS[m[2]] as number) : 1));
}

/** The cgroup daemons are put in. */
export interface DaemonCgroup {
  /** Moves `pid` into the cgroup; failures are logged. */
  add(pid: number): void;
}

/**
 * The daemons' cgroup (`[cgroup] enable`): `<root>/system.slice/nydusd` on a cgroup v2 unified
 * hierarchy, with `memory.max` from `memory_limit`. Undefined when disabled, or — with a
 * warning — when the node has no cgroup v2 (cgroup v1 / hybrid hosts such as these test
 * machines), where the limit is not applied.
 */
export function daemonCgroup(cfg: CgroupConfig, log: Logger, fsRoot = "/sys/fs/cgroup"): DaemonCgroup | undefined {
  if (!cfg.enable) return undefined;
  if (!existsSync(join(fsRoot, "cgroup.controllers"))) {
    log.warn(`[cgroup] enable = true, but ${fsRoot} is not a cgroup v2 hierarchy: nydusd daemons run without a memory limit`);
    return undefined;
  }
  const dir = join(fsRoot, "system.slice", "nydusd");
  try {
    mkdirSync(dir, { recursive: true });
    const total = Number(readFileSync("/proc/meminfo", "utf8").match(/^MemTotal:\s+(\d+) kB/m)?.[1] ?? 0) * 1024;
    const max = memoryLimitBytes(cfg.memory_limit, total);
    if (max !== undefined) writeFileSync(join(dir, "memory.max"), String(max));
  } catch (e) {
    log.warn(`[cgroup] could not set up ${dir}: ${(e as Error).message}; daemons run without a memory limit`);
    return undefined;
  }
  return {
    add(pid) {
      try {
        appendFileSync(join(dir, "cgroup.procs"), String(pid));
      } catch (e) {
        log.warn(`[cgroup] could not move nydusd pid ${pid} into ${dir}: ${(e as Error).message}`);
      }
    },
  };
}
