import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { failedPrecondition, notFound, unavailable } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import type { DaemonEvent, WatchedDaemon } from "../metrics/index.ts";
import { Supervisor } from "../mount/index.ts";
import type { DaemonRow, DaemonStore, InstanceRow } from "../store/index.ts";
import { type DaemonInfoReply, NydusdClient } from "./client.ts";
import { type DaemonCgroup, daemonCgroup } from "./cgroup.ts";
import { daemonConfigFile, daemonPaths, newDaemonId, nextApiSocket } from "./command.ts";
import type { ManagerConfig, ManagerOptions } from "./options.ts";
import {
  clearVestige,
  type NydusdCommand,
  pidAlive,
  reapOrphans,
  spawnDaemon,
  stopProcess,
  unprotectFromOom,
  waitForState,
  waitPidGone,
  Watch,
} from "./process.ts";

/** A daemon the manager runs or watches. */
interface Live {
  row: DaemonRow;
  client: NydusdClient;
  child?: ChildProcess;
  watch?: Watch;
  supervisor?: Supervisor;
  /** Resolved/rejected with the outcome of the current (re)start. */
  ready: Promise<void>;
  /** Set while the daemon is known dead and not (yet) started again. */
  dead: boolean;
  /** The version it is counted under in `nydusd_counts` while it runs; undefined when not counted. */
  counted?: string;
}

/**
 * Lifecycle of nydusd daemons (docs/compat.md §4): starts them with nydus-snapshotter's command
 * lines, waits for RUNNING, watches liveness by holding a connection to each API socket and
 * applies `[daemon] recover_policy` when one dies — `none` (leave it; its mounts fail),
 * `restart` (reap, clear vestiges, start again with the same id, re-mount shared instances in
 * sequence order) or `failover` (the supervisor holds the daemon's FUSE fd and state; a
 * successor takes over, running containers keep their mounts). Records live in
 * {@link DaemonStore}, so {@link Manager.recover} can find the daemons again after rafsnap
 * restarts.
 */
export class Manager {
  private readonly live = new Map<string, Live>();
  private readonly log: Logger;
  private readonly cgroup: DaemonCgroup | undefined;
  private closed = false;
  /** How daemons are started; replaced by {@link Manager.setCommand} after a hot upgrade. */
  private command: NydusdCommand;

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.logger.withTag("manager");
    this.cgroup = daemonCgroup(opts.config.cgroup, this.log);
    this.command = opts.nydusd;
  }

  /** Starts every later daemon (new ones, restarts, failovers) with `command`. */
  setCommand(command: NydusdCommand): void {
    this.command = command;
  }

  /** The records of the daemons the manager runs or watches. */
  daemons(): DaemonRow[] {
    return [...this.live.values()].map((l) => l.row);
  }

  private get cfg(): ManagerConfig {
    return this.opts.config;
  }

  private paths(id: string) {
    return daemonPaths(this.cfg.root, this.cfg.log.dir, id);
  }

  /** A new daemon record (not yet stored) for `mode`, mounted at `mountpoint`. */
  newRow(mode: "dedicated" | "shared", mountpoint: string, bootstrap: string | null): DaemonRow {
    const id = newDaemonId();
    const p = this.paths(id);
    return {
      id,
      pid: 0,
      apiSocket: p.apiSocket,
      mode,
      fsDriver: this.cfg.daemon.fs_driver,
      mountpoint,
      configDir: p.configDir,
      bootstrap,
      supervisorPath: this.cfg.daemon.recover_policy === "failover" ? p.supervisor : null,
      logDir: p.logDir,
      logLevel: this.cfg.log.level,
      logToStdout: this.cfg.log.log_to_stdout,
      logRotationSize: this.cfg.daemon.log_rotation_size,
      threadNum: this.cfg.daemon.threads_number,
      failoverPolicy: this.cfg.daemon.failover_policy,
      createdAt: 0,
    };
  }

  /** The daemon record `id` as the manager knows it, or undefined. */
  daemon(id: string): DaemonRow | undefined {
    return this.live.get(id)?.row;
  }

  /** The API client of daemon `id`; NotFound-like FailedPrecondition when unknown. */
  client(id: string): NydusdClient {
    const l = this.live.get(id);
    if (!l) throw failedPrecondition(`daemon ${id} is not known to this snapshotter`);
    return l.client;
  }

  /**
   * Records `row` and starts it (with `--prefetch-files prefetchFiles` when given); resolves
   * once it is RUNNING. On failure the record is removed, the process (if any) killed and its
   * vestiges cleared, and the error thrown.
   */
  async create(row: DaemonRow, prefetchFiles?: string): Promise<void> {
    const stored = this.opts.store.addDaemon(row);
    try {
      await this.start(stored, { prefetchFiles });
    } catch (e) {
      await this.destroy(stored.id).catch(() => {});
      throw e;
    }
  }

  /** Resolves when daemon `id` is RUNNING (waiting for a restart in progress); Unavailable otherwise. */
  async waitReady(id: string): Promise<void> {
    const l = this.live.get(id);
    if (!l) throw unavailable(`daemon ${id} is not running (no such daemon)`);
    await l.ready;
    if (l.dead) throw unavailable(`daemon ${id} is dead (recover_policy ${this.cfg.daemon.recover_policy}); restart rafsnap or remove the image`);
  }

  /**
   * Starts (or starts again, same id and paths) the daemon of `row` and waits for RUNNING,
   * then watches it and, with a supervisor, saves its state.
   */
  private async start(row: DaemonRow, opts: { takeover?: boolean; recovering?: boolean; prefetchFiles?: string; command?: NydusdCommand } = {}): Promise<void> {
    let live = this.live.get(row.id);
    if (!live) {
      live = { row, client: new NydusdClient(row.apiSocket), ready: Promise.resolve(), dead: true };
      if (row.supervisorPath) live.supervisor = new Supervisor(row.supervisorPath);
      this.live.set(row.id, live);
    }
    const l = live;
    const attempt = (async () => {
      const p = this.paths(row.id);
      mkdirSync(dirname(row.apiSocket), { recursive: true, mode: 0o700 });
      if (row.supervisorPath) mkdirSync(dirname(row.supervisorPath), { recursive: true, mode: 0o700 });
      if (row.mode === "shared") mkdirSync(row.mountpoint, { recursive: true, mode: 0o755 });
      const client = new NydusdClient(row.apiSocket);
      let child: ChildProcess | undefined;
      let exited = false;
      const launch = async () => {
        child = this.spawn(row, p.runDir, { prefetchFiles: opts.prefetchFiles, command: opts.command });
        child.once("exit", () => {
          exited = true;
        });
        this.opts.store.setDaemonPid(row.id, row.pid);
      };
      try {
        if (opts.takeover && l.supervisor?.has()) {
          // The successor finds the stale socket and the live mount, waits in INIT, and takes
          // the FUSE fd and state from the supervisor (§4.4 failover).
          await l.supervisor.restore(async () => {
            await launch();
            await waitForState(client, ["INIT"], this.timeout, () => exited);
            await client.takeover();
          });
          await waitForState(client, ["READY", "RUNNING"], this.timeout, () => exited);
          await client.start();
        } else {
          await launch();
        }
        const info = await waitForState(client, ["RUNNING"], this.timeout, () => exited);
        this.counting(l, info, "RUNNING");
      } catch (e) {
        // A daemon that did not come up is not left behind half started.
        if (child && !exited) child.kill("SIGKILL");
        throw e;
      }
      l.child = child;
      l.client = client;
      l.dead = false;
      l.watch = await Watch.start(row.apiSocket, () => void this.onDeath(row.id));
      await this.saveState(row.id);
    })();
    if (!opts.recovering) {
      // A recovery sets `ready` to the whole of itself (restart and re-mounts).
      l.ready = attempt;
      attempt.catch(() => {});
    }
    await attempt;
  }

  /** Spawns the daemon of `row` with the current command; sets `row.pid`, cgroup and OOM score. */
  private spawn(row: DaemonRow, runDir: string, o: { prefetchFiles?: string; upgrade?: boolean; command?: NydusdCommand } = {}): ChildProcess {
    const child = spawnDaemon(row, o.command ?? this.command, runDir, o.prefetchFiles, o.upgrade);
    const pid = child.pid ?? 0;
    row.pid = pid;
    this.cgroup?.add(pid);
    unprotectFromOom(pid, this.log);
    this.log.info(`started nydusd ${row.id} (pid ${pid}, ${row.mode}, mountpoint ${row.mountpoint}${o.upgrade ? ", upgrade" : ""})`);
    return child;
  }

  private get timeout(): number {
    return this.opts.stateTimeoutMs ?? 30_000;
  }

  /**
   * With recover_policy failover: has the daemon send its FUSE fd and state to its
   * supervisor. A daemon with nothing mounted yet has nothing to save (logged at debug).
   */
  async saveState(id: string): Promise<void> {
    const l = this.live.get(id);
    if (!l?.supervisor) return;
    try {
      await l.supervisor.save(() => l.client.sendFd());
    } catch (e) {
      this.log.debug(`daemon ${id}: state not saved: ${(e as Error).message}`);
    }
  }

  /** Applies the recover policy to a daemon whose API connection was closed. */
  private async onDeath(id: string): Promise<void> {
    const l = this.live.get(id);
    if (!l || this.closed) return;
    l.dead = true;
    l.watch?.stop();
    const policy = this.cfg.daemon.recover_policy;
    this.log.warn(`nydusd ${id} (pid ${l.row.pid}) died; recover policy ${policy}`);
    if (!(await waitPidGone(l.row.pid, 5000))) {
      // The connection closed but the process lives: if it still answers, watch it again.
      const alive = await l.client.info(2000).then(
        (i) => i.state === "RUNNING",
        () => false,
      );
      if (alive && !this.closed) {
        this.log.warn(`nydusd ${id}: the liveness connection closed but the daemon answers RUNNING; watching it again`);
        l.dead = false;
        l.watch = await Watch.start(l.row.apiSocket, () => void this.onDeath(id));
      } else {
        this.log.error(`nydusd ${id} closed its API socket but pid ${l.row.pid} is still there and does not answer; not recovering it`);
      }
      return;
    }
    this.uncount(l, "DIED");
    if (policy === "none" || this.closed) return;
    const p = this.paths(id);
    const done = (async () => {
      if (policy === "failover" && l.supervisor?.has()) {
        await this.start(l.row, { takeover: true, recovering: true });
      } else {
        if (policy === "failover") this.log.warn(`nydusd ${id}: the supervisor holds no state; restarting it instead (its mounts are lost)`);
        await clearVestige(l.row, p.runDir, this.log);
        await this.start(l.row, { recovering: true });
        await this.remountInstances(l.row);
      }
    })();
    l.ready = done;
    done.catch(() => {});
    try {
      await done;
      this.log.info(`nydusd ${id} recovered (${policy})`);
    } catch (e) {
      l.dead = true;
      this.log.error(`nydusd ${id}: ${policy} failed: ${(e as Error).message}`);
    }
  }

  /** Re-mounts every instance of a shared daemon in sequence order (after a restart). */
  private async remountInstances(row: DaemonRow): Promise<void> {
    if (row.mode !== "shared") return;
    const client = this.client(row.id);
    for (const inst of this.opts.store.listInstances().filter((i) => i.daemonId === row.id)) {
      try {
        await client.mount(`/${inst.snapshotId}`, this.mountBody(inst));
      } catch (e) {
        this.log.error(`re-mount of instance ${inst.snapshotId} on daemon ${row.id} failed: ${(e as Error).message}`);
        this.opts.store.setInstanceStatus(inst.snapshotId, `re-mount after a daemon restart failed: ${(e as Error).message}`);
      }
    }
    await this.saveState(row.id);
  }

  /** The `POST /api/v1/mount` body of an instance (its config file, written at mount). */
  mountBody(inst: InstanceRow): { source: string; fs_type: "rafs"; config: string } {
    const file = daemonConfigFile(this.paths(inst.daemonId).configDir, inst.snapshotId);
    return { source: inst.bootstrap, fs_type: "rafs", config: readFileSync(file, "utf8") };
  }

  /**
   * Finds the recorded daemons again after a restart (§4.7): a daemon whose API answers
   * RUNNING is adopted (watched, its state saved again for failover); any other is started
   * again with the same id after clearing its vestiges (shared daemons then re-mount their
   * instances in sequence order). Returns the ids that could not be brought back, with why.
   */
  async recover(): Promise<Map<string, string>> {
    const failed = new Map<string, string>();
    for (const row of this.opts.store.listDaemons()) {
      const client = new NydusdClient(row.apiSocket);
      let info: DaemonInfoReply | undefined;
      try {
        info = await client.info(2000);
      } catch {}
      const state = info?.state ?? "";
      if (info && state === "RUNNING") {
        const live: Live = { row, client, ready: Promise.resolve(), dead: false };
        this.counting(live, info);
        if (row.supervisorPath) live.supervisor = new Supervisor(row.supervisorPath);
        this.live.set(row.id, live);
        live.watch = await Watch.start(row.apiSocket, () => void this.onDeath(row.id));
        await this.saveState(row.id);
        this.log.info(`reattached to nydusd ${row.id} (pid ${row.pid})`);
        continue;
      }
      this.log.warn(`nydusd ${row.id} is not running (${state || "no answer"}); starting it again`);
      if (pidAlive(row.pid) && !(await waitPidGone(row.pid, 0))) {
        // A process that holds the id but does not answer: leave it alone, it is not ours to kill.
        this.log.warn(`pid ${row.pid} of nydusd ${row.id} still exists; clearing its socket anyway`);
      }
      try {
        await clearVestige(row, this.paths(row.id).runDir, this.log);
        await this.start(row);
        await this.remountInstances(row);
      } catch (e) {
        failed.set(row.id, (e as Error).message);
        this.log.error(`nydusd ${row.id} could not be started again: ${(e as Error).message}`);
      }
    }
    reapOrphans(join(this.cfg.root, "run"), new Set(this.opts.store.listDaemons().map((r) => r.id)), this.opts.reapRunDir, this.log);
    return failed;
  }

  /** Stops watching and stops daemon `id` (SIGTERM, then SIGKILL after 5 s), forgets it. */
  async destroy(id: string): Promise<void> {
    const l = this.live.get(id);
    this.live.delete(id);
    if (l) this.uncount(l, "DESTROYED");
    l?.watch?.stop();
    l?.supervisor?.close();
    const row = l?.row ?? this.opts.store.getDaemon(id);
    if (row) await stopProcess(row, "SIGTERM", this.log);
    if (row) await clearVestige(row, this.paths(id).runDir, this.log);
    this.opts.store.removeDaemon(id);
  }

  /**
   * Hot upgrade of daemon `id` to `command` (docs/compat.md §4.4; docs/nydusd.md "Hot upgrade").
   * The daemon's FUSE descriptor and state are saved to its supervisor; a successor is started
   * with `--upgrade` on the next API socket (`api1.sock`…) and must reach INIT — if it does not,
   * it is killed and the old daemon serves on, unchanged. Then the old daemon exits leaving
   * its mounts (`PUT /api/v1/daemon/exit`), the successor takes the descriptor and state over
   * (the kernel resends what the old one left unanswered), starts and must reach RUNNING:
   * readers see a pause, no error. Should the takeover fail, the old command takes over
   * instead (failover) and the error is thrown. An idle shared daemon (no instance) has
   * nothing to hand over: it is stopped and started again with `command`.
   * NotFound for an unknown daemon, Unavailable for a dead one, FailedPrecondition without a
   * supervisor (`recover_policy` other than failover).
   */
  async upgrade(id: string, command: NydusdCommand): Promise<void> {
    const l = this.live.get(id);
    if (!l) throw notFound(`daemon ${id} is not known to this snapshotter`);
    await l.ready.catch(() => {});
    if (l.dead) throw unavailable(`daemon ${id} is not running; nothing to upgrade`);
    if (!l.supervisor)
      throw failedPrecondition(`daemon ${id}: hot upgrade needs [daemon] recover_policy = "failover" (its supervisor holds the FUSE descriptor)`);
    const idle = l.row.mode === "shared" && !this.opts.store.listInstances().some((i) => i.daemonId === id);
    const done = idle ? this.restartWith(l, command) : this.handOver(l, l.supervisor, command);
    l.ready = done;
    done.catch(() => {});
    await done;
  }

  /** Upgrade of a daemon with nothing mounted: stop it, start it again with `command`. */
  private async restartWith(l: Live, command: NydusdCommand): Promise<void> {
    l.watch?.stop();
    l.dead = true;
    await stopProcess(l.row, "SIGTERM", this.log);
    await clearVestige(l.row, this.paths(l.row.id).runDir, this.log);
    this.recount(l);
    await this.start(l.row, { recovering: true, command });
  }

  /** The hand-over of {@link Manager.upgrade}. */
  private async handOver(l: Live, sup: Supervisor, command: NydusdCommand): Promise<void> {
    const old = { ...l.row };
    const runDir = this.paths(old.id).runDir;
    await sup.save(() => l.client.sendFd());
    const next: DaemonRow = { ...old, apiSocket: nextApiSocket(old.apiSocket) };
    rmSync(next.apiSocket, { force: true });
    const client = new NydusdClient(next.apiSocket);
    let exited = false;
    const child = this.spawn(next, runDir, { upgrade: true, command });
    child.once("exit", () => {
      exited = true;
    });
    const abandon = async () => {
      if (!exited) child.kill("SIGKILL");
      await waitPidGone(next.pid, 5000);
      rmSync(next.apiSocket, { force: true });
    };
    try {
      await waitForState(client, ["INIT"], this.timeout, () => exited);
    } catch (e) {
      await abandon();
      throw e; // the old daemon was not touched
    }
    // The old daemon goes, leaving its mounts (and its stale API socket: a failover below needs it).
    l.watch?.stop();
    l.dead = true;
    await l.client.exit().catch((e) => this.log.warn(`nydusd ${old.id}: exit: ${(e as Error).message}`));
    await stopProcess(old, null, this.log);
    this.recount(l);
    let info: DaemonInfoReply;
    try {
      await sup.restore(() => client.takeover());
      await waitForState(client, ["READY", "RUNNING"], this.timeout, () => exited);
      await client.start();
      info = await waitForState(client, ["RUNNING"], this.timeout, () => exited);
    } catch (e) {
      await abandon();
      this.log.error(`nydusd ${old.id}: upgrade failed after the old daemon exited (${(e as Error).message}); the previous binary takes over`);
      await this.start(l.row, { takeover: true, recovering: true }).catch((e2) =>
        this.log.error(`nydusd ${old.id}: failover failed too: ${(e2 as Error).message}`),
      );
      throw e;
    }
    rmSync(old.apiSocket, { force: true });
    Object.assign(l.row, { apiSocket: next.apiSocket, pid: next.pid });
    this.opts.store.setDaemonApiSocket(old.id, next.apiSocket);
    this.opts.store.setDaemonPid(old.id, next.pid);
    l.child = child;
    l.client = client;
    l.dead = false;
    this.counting(l, info, "RUNNING");
    l.watch = await Watch.start(next.apiSocket, () => void this.onDeath(old.id));
    await this.saveState(old.id);
    this.log.info(`nydusd ${old.id} upgraded: pid ${old.pid} -> ${next.pid}, API ${next.apiSocket}`);
  }

  /**
   * Counts a daemon that runs in `nydusd_counts` under its reported version (once), and
   * records `event` when given (an adopted daemon is counted without an event, as nydus
   * does).
   */
  private counting(l: Live, info: DaemonInfoReply, event?: DaemonEvent): void {
    const m = this.opts.metrics;
    if (!m) return;
    if (event) m.nydusdEvents.inc({ nydusd_event: event });
    if (l.counted !== undefined) return;
    l.counted = info.version?.package_ver ?? "";
    m.nydusdCounts.inc({ version: l.counted });
  }

  /** Takes a daemon out of `nydusd_counts` without an event (it is replaced, not dead). */
  private recount(l: Live): void {
    if (!this.opts.metrics || l.counted === undefined) return;
    this.opts.metrics.nydusdCounts.dec({ version: l.counted });
    l.counted = undefined;
  }

  /** Takes a daemon out of `nydusd_counts` (if it was counted) and records `event`. */
  private uncount(l: Live, event: DaemonEvent): void {
    const m = this.opts.metrics;
    if (!m) return;
    m.nydusdEvents.inc({ nydusd_event: event });
    if (l.counted === undefined) return;
    m.nydusdCounts.dec({ version: l.counted });
    l.counted = undefined;
  }

  /**
   * The daemons for the metrics collector: each with its pid, whether it runs, the images
   * it serves (instance records; `id=` `/<snapshot>` on a shared daemon) and its API client.
   */
  watched(): WatchedDaemon[] {
    const insts = this.opts.store.listInstances();
    return [...this.live.values()].map((l) => ({
      id: l.row.id,
      pid: l.row.pid,
      running: !l.dead,
      images: insts
        .filter((i) => i.daemonId === l.row.id)
        .map((i) => ({ imageRef: i.imageId, apiId: l.row.mode === "shared" ? `/${i.snapshotId}` : undefined })),
      api: l.client,
    }));
  }

  /** Stops watching every daemon (they keep running, as nydus-snapshotter's do). */
  close(): void {
    this.closed = true;
    for (const l of this.live.values()) {
      l.watch?.stop();
      l.supervisor?.close();
    }
  }
}
