import { spawnSync } from "node:child_process";
import { accessSync, constants, lstatSync, readFileSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { failedPrecondition, invalidArgument, notFound, unavailable } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { daemonConfigFile, type Manager, type NydusdCommand, type PrefetchLists } from "../manager/index.ts";
import { processStats } from "../metrics/index.ts";
import type { DaemonRow, DaemonStore } from "../store/index.ts";

/** One RAFS instance of a daemon in `GET /api/v1/daemons` (nydus-snapshotter's field names). */
export interface InstanceInfo {
  snapshot_id: string;
  snapshot_dir: string;
  mountpoint: string;
  image_id: string;
}

/** One daemon in `GET /api/v1/daemons` (nydus-snapshotter's field names). */
export interface DaemonInfo {
  id: string;
  pid: number;
  api_socket: string;
  supervisor_path: string;
  /** How many instances the daemon serves. */
  reference: number;
  mountpoint: string;
  /** Not measured by rafsnap (`[system.debug] daemon_cpu_profile_duration_secs` is not built): 0. */
  startup_cpu_utilization: number;
  /** VmRSS of the process in KiB; 0 when it cannot be read. */
  memory_rss_kb: number;
  /** Bytes read through the daemon's instances (its own `GET /api/v1/metrics`), in KiB; 0 when it does not answer. */
  read_data_kb: number;
  instances: Record<string, InstanceInfo>;
}

/** Body of `PUT /api/v1/daemons/upgrade`. */
export interface UpgradeRequest {
  /** The new daemon binary. */
  nydusd_path: string;
  /** When not empty, the version the binary must report (a leading `v` is ignored). */
  version?: string;
  /** Accepted for compatibility (`rolling`, `immediate`): rafsnap always upgrades one daemon after another. */
  policy?: string;
}

/** What the controller works on; built by the composition root. */
export interface ControllerDeps {
  /** Undefined when `[daemon] fs_driver` runs no daemons (nodev): no daemons to list or upgrade. */
  manager?: Manager;
  store: DaemonStore;
  prefetch: PrefetchLists;
  /** `[daemon] nydusd_path`: replaced by a link to the new binary after an upgrade, when it exists. */
  nydusdPath: string;
  logger: Logger;
}

/**
 * The operations of the system controller (docs/compat.md §7): describe the daemons, hand out a
 * daemon's backend, hot-upgrade every daemon to a new binary, and record prefetch lists.
 * Failures are RafsnapErrors whose kind the HTTP layer turns into a status.
 */
export class SystemController {
  private upgrading = false;
  private readonly log: Logger;

  constructor(private readonly deps: ControllerDeps) {
    this.log = deps.logger.withTag("system");
  }

  /** Every daemon with its instances, RSS and bytes read. Never fails for one daemon that does not answer. */
  async daemons(): Promise<DaemonInfo[]> {
    const m = this.deps.manager;
    if (!m) return [];
    const insts = this.deps.store.listInstances();
    return Promise.all(
      m.daemons().map(async (row) => {
        const mine = insts.filter((i) => i.daemonId === row.id);
        const instances: Record<string, InstanceInfo> = {};
        for (const i of mine)
          instances[i.snapshotId] = { snapshot_id: i.snapshotId, snapshot_dir: i.snapshotDir, mountpoint: i.mountpoint, image_id: i.imageId };
        return {
          id: row.id,
          pid: row.pid,
          api_socket: row.apiSocket,
          supervisor_path: row.supervisorPath ?? "",
          reference: mine.length,
          mountpoint: row.mountpoint,
          startup_cpu_utilization: 0,
          memory_rss_kb: processStats(row.pid)?.rssKb ?? 0,
          read_data_kb:
            (await this.readBytes(
              m,
              row,
              mine.map((i) => i.snapshotId),
            )) / 1024,
          instances,
        };
      }),
    );
  }

  /** Bytes read through a daemon: its only instance (dedicated), or the sum over `/<snapshot>` (shared). */
  private async readBytes(m: Manager, row: DaemonRow, snapshots: string[]): Promise<number> {
    const ids = row.mode === "shared" ? snapshots.map((s) => `/${s}`) : [undefined];
    let sum = 0;
    for (const id of ids) {
      try {
        const stats = (await m.client(row.id).fsMetrics(id)) as { data_read?: unknown } | null;
        if (typeof stats?.data_read === "number") sum += stats.data_read;
      } catch (e) {
        this.log.debug(`daemon ${row.id}: metrics ${id ?? "/"}: ${(e as Error).message}`);
      }
    }
    return sum;
  }

  /**
   * `{"type", "config"}` of daemon `id`'s storage backend, from its nydusd config file (the
   * credentials in it included: the socket is root's only). NotFound for an unknown daemon;
   * FailedPrecondition when its config file cannot be read.
   */
  backend(id: string): { type: string; config: unknown } {
    const row = this.deps.manager?.daemon(id);
    if (!row) throw notFound(`daemon ${id} not found`);
    const file = daemonConfigFile(row.configDir);
    let cfg: { device?: { backend?: { type?: unknown; config?: unknown } } };
    try {
      cfg = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw failedPrecondition(`daemon ${id}: its config ${file} cannot be read: ${(e as Error).message}`, e);
    }
    const b = cfg.device?.backend;
    if (typeof b?.type !== "string") throw failedPrecondition(`daemon ${id}: its config ${file} has no device.backend.type`);
    return { type: b.type, config: b.config ?? {} };
  }

  /** Records prefetch lists (`[{"image","prefetch"}]`) for the next daemon of each image; InvalidArgument otherwise. */
  setPrefetch(body: unknown): void {
    this.deps.prefetch.set(body);
    this.log.info(`prefetch lists recorded; ${this.deps.prefetch.size} image(s) waiting`);
  }

  /**
   * Hot-upgrades every daemon, one after another, to the binary `req.nydusd_path`
   * ({@link Manager.upgrade}); stops at the first failure (the daemons before it run the new
   * binary, the rest the old one). Then later daemons start with the new binary, and
   * `[daemon] nydusd_path`, when it exists, is replaced (atomically) by a link to it, so that
   * the choice outlives a restart. InvalidArgument for a missing or unusable path or one that
   * is not a nydusd; FailedPrecondition for a version mismatch; Unavailable while another
   * upgrade runs.
   */
  async upgrade(req: UpgradeRequest): Promise<void> {
    if (this.upgrading) throw unavailable("an upgrade is already running");
    this.upgrading = true;
    try {
      const { command, version } = nydusdBinary(req.nydusd_path);
      const want = (req.version ?? "").replace(/^v/, "");
      if (want !== "" && want !== version.replace(/^v/, "")) {
        throw failedPrecondition(`${req.nydusd_path} reports version ${version}, not ${req.version}`);
      }
      const m = this.deps.manager;
      for (const row of m?.daemons() ?? []) {
        this.log.info(`upgrading nydusd ${row.id} (pid ${row.pid}) to ${req.nydusd_path} (${version})`);
        await m?.upgrade(row.id, command);
      }
      m?.setCommand(command);
      this.linkNydusdPath(command.cmd[0] as string);
    } finally {
      this.upgrading = false;
    }
  }

  /** Points `[daemon] nydusd_path` at `binary` (symlink, renamed into place) when the path exists. */
  private linkNydusdPath(binary: string): void {
    const dest = this.deps.nydusdPath;
    try {
      lstatSync(dest);
    } catch {
      this.log.info(`[daemon] nydusd_path ${dest} does not exist: the new binary is used until rafsnap restarts`);
      return;
    }
    if (resolve(dest) === binary) return;
    const tmp = `${dest}.rafsnap-tmp`;
    rmSync(tmp, { force: true });
    symlinkSync(binary, tmp);
    renameSync(tmp, dest);
    this.log.info(`[daemon] nydusd_path ${dest} now links to ${binary}`);
  }
}

/**
 * How to run the daemon binary at `path` and the version it reports: a nydusd answers
 * `--version` with a `Version:` line; a rafsnap binary under another name does so as
 * `<path> nydusd --version` and is run with the `nydusd` subcommand. InvalidArgument for a
 * relative, missing or non-executable path, or a binary that answers neither way.
 */
export function nydusdBinary(path: unknown): { command: NydusdCommand; version: string } {
  if (typeof path !== "string" || !isAbsolute(path)) throw invalidArgument(`nydusd_path must be an absolute path (got ${JSON.stringify(path)})`);
  try {
    accessSync(path, constants.X_OK);
  } catch (e) {
    throw invalidArgument(`nydusd_path ${path} is not an executable file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
  for (const args of [[], ["nydusd"]]) {
    const r = spawnSync(path, [...args, "--version"], { encoding: "utf8", timeout: 10_000 });
    const m = /^Version:\s*(\S+)/m.exec(r.stdout ?? "");
    if (r.status === 0 && m) return { command: { cmd: [path, ...args] }, version: m[1] as string };
  }
  throw invalidArgument(`nydusd_path ${path} does not answer --version like nydusd`);
}
