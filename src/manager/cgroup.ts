import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import type { ManagerConfig } from "./options.ts";

const UNITS: Record<string, number> = {
  B: 1,
  Ki: 1024,
  KiB: 1024,
  Mi: 1024 ** 2,
  MiB: 1024 ** 2,
  Gi: 1024 ** 3,
  GiB: 1024 ** 3,
  Ti: 1024 ** 4,
  TiB: 1024 ** 4,
  Pi: 1024 ** 5,
  PiB: 1024 ** 5,
};

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

/**
 * The limit when `memory_limit` is "" (the default): a quarter of the node's memory. The Go
 * snapshotter leaves daemons unlimited; a daemon that a hostile image or a bug makes grow
 * then takes the node with it. "100%" turns the limit off in effect.
 */
export const DEFAULT_MEMORY_LIMIT = "25%";

/** The cgroup daemons are put in. */
export interface DaemonCgroup {
  /** The cgroup's directory, e.g. `/sys/fs/cgroup/memory/system.slice/nydusd`. */
  dir: string;
  /** The memory limit set on it, in bytes (0: none, `memory_limit = "0"`). */
  limitBytes: number;
  /** Moves `pid` into the cgroup; failures are logged. */
  add(pid: number): void;
}

/** Where the daemons' cgroup goes and which file holds its memory limit. */
function hierarchyOf(fsRoot: string): { dir: string; limitFile: string } | undefined {
  // cgroup v2 (unified): one tree; its memory controller must be enabled at the root.
  if (existsSync(join(fsRoot, "cgroup.controllers"))) {
    if (!readFileSync(join(fsRoot, "cgroup.controllers"), "utf8").split(/\s+/).includes("memory")) return undefined;
    return { dir: join(fsRoot, "system.slice", "nydusd"), limitFile: "memory.max" };
  }
  // cgroup v1 (or hybrid): the memory controller's own tree.
  if (existsSync(join(fsRoot, "memory", "memory.limit_in_bytes"))) {
    return { dir: join(fsRoot, "memory", "system.slice", "nydusd"), limitFile: "memory.limit_in_bytes" };
  }
  return undefined;
}

/**
 * The daemons' cgroup (`[cgroup] enable`, on by default): `system.slice/nydusd` with a memory
 * limit of `memory_limit` ({@link DEFAULT_MEMORY_LIMIT} when ""), as nydus-snapshotter places
 * it — in the unified tree on cgroup v2 (`memory.max`), in the memory controller's tree on
 * cgroup v1 and hybrid hosts (`memory.limit_in_bytes`). Undefined when disabled, or — with a
 * warning — when the node has no memory controller to use or the cgroup cannot be made: the
 * daemons then run without a limit, never fail to start.
 */
export function daemonCgroup(cfg: ManagerConfig["cgroup"], log: Logger, fsRoot = "/sys/fs/cgroup"): DaemonCgroup | undefined {
  if (!cfg.enable) return undefined;
  const h = hierarchyOf(fsRoot);
  if (!h) {
    log.warn(`[cgroup] enable = true, but ${fsRoot} has no cgroup memory controller to use: nydusd daemons run without a memory limit`);
    return undefined;
  }
  let limitBytes: number;
  try {
    mkdirSync(h.dir, { recursive: true });
    const total = Number(readFileSync("/proc/meminfo", "utf8").match(/^MemTotal:\s+(\d+) kB/m)?.[1] ?? 0) * 1024;
    limitBytes = memoryLimitBytes(cfg.memory_limit || DEFAULT_MEMORY_LIMIT, total) as number;
    // "0" asks for no limit (a zero limit would kill every daemon at once).
    if (limitBytes > 0) writeFileSync(join(h.dir, h.limitFile), String(limitBytes));
  } catch (e) {
    log.warn(`[cgroup] could not set up ${h.dir}: ${(e as Error).message}; daemons run without a memory limit`);
    return undefined;
  }
  log.info(`[cgroup] nydusd daemons go into ${h.dir} ${limitBytes > 0 ? `with a memory limit of ${limitBytes} bytes` : "without a memory limit"}`);
  return {
    dir: h.dir,
    limitBytes,
    add(pid) {
      try {
        appendFileSync(join(h.dir, "cgroup.procs"), String(pid));
      } catch (e) {
        log.warn(`[cgroup] could not move nydusd pid ${pid} into ${h.dir}: ${(e as Error).message}`);
      }
    },
  };
}
