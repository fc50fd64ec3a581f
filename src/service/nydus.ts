import { existsSync } from "node:fs";
import type { Config } from "../config/index.ts";
import { failedPrecondition } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { Manager, type ManagerConfig, type NydusdCommand, type PrefetchLists } from "../manager/index.ts";
import type { Metrics } from "../metrics/index.ts";
import { reapOrphanRunDir } from "../nydusd/index.ts";
import { type CredentialLookup, NydusFs, type NydusFsConfig } from "../nydusfs/index.ts";
import type { DaemonStore } from "../store/index.ts";
import { selfCommand } from "../sys/index.ts";

/** `[daemon] nydusd_path` as packaged: the link to rafsnap's own binary. */
export const PACKAGED_NYDUSD = "/usr/libexec/rafsnap/nydusd";

/**
 * How to run nydusd: `[daemon] nydusd_path` when that file exists (the real nydusd works the
 * same); when it is the packaged default and missing (running from a build tree), rafsnap's
 * own executable in `nydusd` mode. FailedPrecondition naming the key for any other missing
 * path.
 */
export function nydusdCommand(config: Config): NydusdCommand {
  const path = config.daemon.nydusd_path;
  if (existsSync(path)) return { cmd: [path] };
  if (path !== PACKAGED_NYDUSD) {
    throw failedPrecondition(
      `[daemon] nydusd_path ${JSON.stringify(path)} does not exist; install nydusd there or point the key at rafsnap's nydusd link (${PACKAGED_NYDUSD})`,
    );
  }
  return { cmd: selfCommand("nydusd") };
}

/** The fields of `config` the daemon manager reads. */
export function managerConfig(config: Config): ManagerConfig {
  const { root, log, daemon, cgroup } = config;
  return {
    root,
    log: { dir: log.dir, level: log.level, log_to_stdout: log.log_to_stdout },
    daemon: {
      fs_driver: daemon.fs_driver,
      recover_policy: daemon.recover_policy,
      threads_number: daemon.threads_number,
      log_rotation_size: daemon.log_rotation_size,
      failover_policy: daemon.failover_policy,
    },
    cgroup: { enable: cgroup.enable, memory_limit: cgroup.memory_limit },
  };
}

/** The fields of `config` the nydus remote filesystem reads. */
export function nydusFsConfig(config: Config): NydusFsConfig {
  return {
    root: config.root,
    daemon_mode: config.daemon_mode,
    daemon: { nydusd_config: config.daemon.nydusd_config, fs_driver: config.daemon.fs_driver },
    cache_manager: { cache_dir: config.cache_manager.cache_dir },
    remote: { mirrors_config: { dir: config.remote.mirrors_config.dir } },
  };
}

/** The nydus side of the service: the daemon manager and the RAFS instances. */
export interface NydusParts {
  manager: Manager;
  fs: NydusFs;
  /** Daemons that could not be brought back at start (id → why). */
  failed: Map<string, string>;
}

/**
 * Builds the nydus side for `[daemon] fs_driver`: `fusedev` gets the daemon manager and
 * instances (recovered from the store, shared daemon started); `nodev` gets none (plain
 * overlay snapshots only). FailedPrecondition for `fscache`, `blockdev` and `proxy`, which
 * this build does not implement (the kernel here has no cachefiles on-demand mode; tarfs and
 * Kata guest pull are out of scope) — better refused at start than silently unpacked.
 * `metrics` gets the daemon counts and events and reads the cache GC's counters; a dedicated
 * daemon takes its image's list from `prefetch` (the system controller fills it);
 * `credentials` is where the daemons' registry credentials come from.
 */
export async function startNydus(
  config: Config,
  store: DaemonStore,
  logger: Logger,
  parts: { metrics?: Metrics; prefetch?: PrefetchLists; credentials?: CredentialLookup } = {},
): Promise<NydusParts | undefined> {
  const driver = config.daemon.fs_driver;
  if (driver === "nodev") return undefined;
  if (driver !== "fusedev") {
    throw failedPrecondition(
      `[daemon] fs_driver = ${JSON.stringify(driver)} is not supported by rafsnap; use "fusedev" (or "nodev" for plain OCI images only)`,
    );
  }
  const metrics = parts.metrics;
  const manager = new Manager({ config: managerConfig(config), store, logger, nydusd: nydusdCommand(config), reapRunDir: reapOrphanRunDir, metrics });
  const fs = new NydusFs({ config: nydusFsConfig(config), manager, store, logger, prefetch: parts.prefetch, credentials: parts.credentials });
  metrics?.observeCacheGc(() => fs.gcStats);
  const failed = await fs.init();
  return { manager, fs, failed };
}
