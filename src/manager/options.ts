import type { Logger } from "../log/index.ts";
import type { Metrics } from "../metrics/index.ts";
import type { DaemonStore } from "../store/index.ts";
import type { NydusdCommand, ReapRunDir } from "./process.ts";

/**
 * The configuration the daemon manager reads: the fields of rafsnap's `Config` it uses and
 * no others (the composition root picks them). Shaped as the TOML sections they come from.
 */
export interface ManagerConfig {
  /** The snapshotter root: daemons' sockets, config files, supervisors and run dirs live under it. */
  root: string;
  /** `[log]`: each daemon's log directory, level and whether it logs to stdout. */
  log: { dir: string; level: string; log_to_stdout: boolean };
  /** `[daemon]`: what goes on each daemon's command line and what happens when one dies. */
  daemon: {
    fs_driver: string;
    recover_policy: "none" | "restart" | "failover";
    threads_number: number;
    log_rotation_size: number;
    failover_policy: string;
  };
  /** `[cgroup]`: the cgroup daemons go into and its memory limit. */
  cgroup: { enable: boolean; memory_limit: string };
}

/** What the manager needs; built by the composition root. */
export interface ManagerOptions {
  config: ManagerConfig;
  store: DaemonStore;
  logger: Logger;
  /** How to run nydusd (`[daemon] nydusd_path`, or rafsnap's own `nydusd` mode). */
  nydusd: NydusdCommand;
  /**
   * What a daemon leaves in its run directory (`RAFSNAP_RUN_DIR`: the built-in daemon's blobfs
   * mounts) is the daemon's own layout, so its reaping belongs to `src/nydusd`
   * (`reapOrphanRunDir`), not to the process lifecycle here: the composition root passes it in,
   * and the manager only decides when (after recovery, for ids it no longer records).
   */
  reapRunDir: ReapRunDir;
  /** How long to wait for a daemon to reach a state; default 30 s. */
  stateTimeoutMs?: number;
  /** Where `nydusd_counts` and `nydusd_lifetime_event_counts` go; not counted when undefined. */
  metrics?: Metrics;
}
