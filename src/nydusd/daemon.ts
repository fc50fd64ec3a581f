import { dirname, join } from "node:path";
import { failedPrecondition, invalidArgument, notFound, notImplemented } from "../errdefs/index.ts";
import { fetchState, sendState } from "../mount/index.ts";
import { isLogLevelName, LOG_LEVEL_NAMES, type Logger, setLogLevel } from "../log/index.ts";
import type { DaemonApi, DaemonInfo, MountRequest } from "./api.ts";
import { type DaemonConfig, parseDaemonConfig } from "./config.ts";
import { Blobfs } from "./blobfs.ts";
import { adoptBlobfs, type BlobfsMount, decodeAuth, type Instance, MAX_BOOTSTRAP_BYTES, mountInstance, startBlobfs } from "./instance.ts";
import { instancePrefetchList, type PrefetchListReport } from "./access-record.ts";
import { DaemonStateMachine } from "./state.ts";
import { reapDeadBlobfs } from "./run-dir.ts";

/** Version facts reported by `GET /api/v1/daemon` and `--version`. */
export interface VersionFacts {
  version: string;
  revision: string;
  buildTime: string;
  runtime: string;
}

/** What `sendfd` gives the supervisor besides the descriptor (opaque to the snapshotter). */
interface TakeoverState {
  v: 1;
  blobfsDir: string;
  instances: { id: string; bootstrap: string; mountpoint: string; config: DaemonConfig; blobs: [string, string][] }[];
}

/** How the daemon was started. */
export interface DaemonOptions {
  id: string | null;
  supervisor: string | null;
  /** The FUSE mountpoint: the image itself (dedicated) or the parent of instances (shared). */
  mountpoint: string;
  /** Private directory for blobfs mounts. */
  runDir: string;
  /** Template config for instances mounted through the API without their own. */
  config?: DaemonConfig;
  version: VersionFacts;
  logger: Logger;
  /** FUSE reader threads of the blobfs (`--thread-num`); the session's default when absent. */
  fuseThreads?: number;
  /**
   * `--failover-policy`: after a takeover, `resend` (the default) and `flush` ask the kernel to
   * resend the requests the predecessor read and never answered (FUSE_NOTIFY_RESEND); `none`
   * leaves them unanswered, as nydusd does (their readers wait until the mount goes).
   */
  failoverPolicy?: FailoverPolicy;
}

/** nydusd's `--failover-policy` values. */
export const FAILOVER_POLICIES = ["none", "resend", "flush"] as const;
/** One of {@link FAILOVER_POLICIES}. */
export type FailoverPolicy = (typeof FAILOVER_POLICIES)[number];

/**
 * The built-in nydusd: RAFS instances served through one blobfs + kernel EROFS, driven by the
 * nydusd HTTP API and state machine. Dedicated mode mounts its bootstrap at start (INIT →
 * READY → RUNNING); shared mode mounts instances at `<mountpoint>/<id>` through the API.
 * Failover: `sendfd` hands the blobfs descriptor and the instance list to the supervisor; a
 * successor started for takeover (INIT) gets them back with `takeover`.
 */
export class Daemon implements DaemonApi {
  private readonly sm = new DaemonStateMachine();
  private readonly instances = new Map<string, Instance>();
  private blobfs: BlobfsMount | undefined;

  constructor(private readonly opts: DaemonOptions) {}

  /**
   * Gives memory back once an instance came or went. Mounting parses the bootstrap and the CI
   * table of every blob (garbage in proportion to the chunk count, most of it dropped again
   * when a blob is already served) and JIT-compiles the mount path; left to the collector's
   * own pace, 20 mounts of one image kept ~15 MiB more resident (measured: docs/nydusd.md,
   * "Memory"). `Bun.shrink()` (deprecated in the typings, still in the pinned Bun) runs, once
   * the current call returns, a full collection, drops compiled code and returns free malloc
   * pages to the kernel; `Bun.gc(true)` (the full collection alone) where it is missing. Reads
   * are not affected beyond their code being compiled again on first use.
   */
  private settle(): void {
    if (typeof Bun.shrink === "function") Bun.shrink();
    else Bun.gc(true);
  }

  /** Backend failovers are warnings in the daemon's log. */
  private readonly backendLog = (msg: string) => this.opts.logger.withTag("backend").warn(msg);

  /**
   * The daemon's one blobfs, mounted on first use. Blobfs mounts that predecessors in the same
   * run root left behind (their daemon is gone, and this one does not serve them) are reaped
   * then: aborted and detached ({@link reapDeadBlobfs}).
   */
  private blobfsMount(config: DaemonConfig): BlobfsMount {
    if (!this.blobfs) {
      this.blobfs = startBlobfs(this.opts.runDir, { amplifyIo: config.amplifyIo, logger: this.opts.logger, workers: this.opts.fuseThreads });
      reapDeadBlobfs(dirname(this.opts.runDir), this.opts.logger, this.blobfs.dir);
    }
    return this.blobfs;
  }

  /**
   * Failover/upgrade start: mounts nothing and stays in INIT, waiting for `takeover` (the
   * predecessor's mounts are still there and its FUSE descriptor is with the supervisor).
   */
  startForTakeover(): void {
    this.opts.logger.info("waiting in INIT for takeover");
  }

  /** Dedicated mode: mounts `bootstrap` at the mountpoint and starts. */
  async startDedicated(bootstrap: string, config: DaemonConfig, prefetchFiles: string[] = []): Promise<void> {
    const inst = await mountInstance({
      id: "/",
      bootstrap,
      mountpoint: this.opts.mountpoint,
      config,
      blobfs: this.blobfsMount(config),
      prefetchFiles,
      log: this.backendLog,
    });
    this.instances.set("/", inst);
    this.sm.fire("Mount");
    this.sm.fire("Start");
    this.settle();
  }

  /** Shared mode with no instance yet: straight to RUNNING, as nydusd does. */
  startShared(): void {
    this.sm.fire("Mount");
    this.sm.fire("Start");
  }

  info(): DaemonInfo {
    const v = this.opts.version;
    return {
      version: { package_ver: v.version, git_commit: v.revision, build_time: v.buildTime, profile: "release", rustc: v.runtime },
      id: this.opts.id,
      supervisor: this.opts.supervisor,
      state: this.sm.state,
      backend_collection: Object.fromEntries([...this.instances.keys()].map((k) => [k, { type: "blobfs" }])),
    };
  }

  /** nydusd's `PUT /api/v1/daemon` `log_level`: every logger of the daemon at once; InvalidArgument for an unknown name. */
  setLogLevel(level: string): void {
    if (!isLogLevelName(level)) throw invalidArgument(`log_level ${JSON.stringify(level)}: one of ${LOG_LEVEL_NAMES.join(", ")}`);
    setLogLevel(this.opts.logger, level);
    this.opts.logger.info(`log level set to ${level}`);
  }

  async start(): Promise<void> {
    this.sm.fire("Start");
  }

  /**
   * `exit`: leaves the mounts for a successor (hot upgrade) and exits after answering. A
   * RUNNING daemon is stopped first (Running -Stop-> Ready -Exit->), as nydusd's exit does.
   */
  async exit(): Promise<void> {
    if (this.sm.state === "RUNNING") this.sm.fire("Stop");
    this.sm.fire("Exit");
    // Leaves the mounts for a successor; the process exits after answering.
    setTimeout(() => process.kill(process.pid, "SIGKILL"), 50);
  }

  private supervisorPath(): string {
    if (!this.opts.supervisor) throw failedPrecondition("no supervisor: start the daemon with --id and --supervisor");
    return this.opts.supervisor;
  }

  /**
   * `sendfd`: hands the blobfs `/dev/fuse` descriptor and the daemon state (its instances, as
   * JSON) to the supervisor, so that a successor can take over.
   */
  async sendFd(): Promise<void> {
    const path = this.supervisorPath();
    if (!this.blobfs) throw failedPrecondition("sendfd: nothing is mounted yet");
    const b = this.blobfs;
    const state: TakeoverState = {
      v: 1,
      blobfsDir: b.dir,
      instances: [...this.instances.values()].map((i) => ({
        id: i.id,
        bootstrap: i.bootstrap,
        mountpoint: i.mountpoint,
        config: i.config,
        blobs: i.blobIds.map((id) => [id, String(b.fs.inoOf(id) ?? 0)] as [string, string]),
      })),
    };
    await sendState(path, { fd: b.fd, state: new TextEncoder().encode(JSON.stringify(state)) });
  }

  /**
   * `takeover`: receives the predecessor's FUSE descriptor and state from the supervisor,
   * serves the same blobs under the same inode numbers on that descriptor, asks the kernel to
   * resend what was left unanswered, and goes to READY (then `start` → RUNNING).
   */
  async takeover(): Promise<void> {
    if (this.sm.state !== "INIT") throw failedPrecondition(`UnexpectedEvent: Takeover in state ${this.sm.state}`);
    const got = await fetchState(this.supervisorPath());
    let state: TakeoverState;
    try {
      state = JSON.parse(new TextDecoder().decode(got.state)) as TakeoverState;
      if (state.v !== 1) throw new Error(`state version ${state.v}`);
    } catch (e) {
      throw invalidArgument(`takeover: the supervisor's state is not ours: ${(e as Error).message}`);
    }
    const fs = new Blobfs({ amplifyIo: state.instances[0]?.config.amplifyIo, logger: this.opts.logger });
    const attachAll = new Map(state.instances.flatMap((i) => i.blobs.map(([id, ino]) => [id, BigInt(ino)] as [string, bigint])));
    // Blobs first (in any order: their inode numbers are fixed), then resend.
    const pending: BlobfsMount = adoptBlobfs(state.blobfsDir, got.fd, fs, { logger: this.opts.logger, workers: this.opts.fuseThreads });
    this.blobfs = pending;
    for (const i of state.instances) {
      const inst = await mountInstance({
        id: i.id,
        bootstrap: i.bootstrap,
        mountpoint: i.mountpoint,
        config: i.config,
        blobfs: pending,
        attach: attachAll,
        log: this.backendLog,
      });
      this.instances.set(i.id, inst);
    }
    if ((this.opts.failoverPolicy ?? "resend") !== "none") pending.session.notifyResend();
    else this.opts.logger.info("failover policy none: requests the predecessor left unanswered are not resent");
    reapDeadBlobfs(dirname(this.opts.runDir), this.opts.logger, state.blobfsDir);
    this.sm.fire("Takeover");
    this.settle();
  }

  private instancePath(mountpoint: string): string {
    const rel = mountpoint.replace(/^\/+/, "");
    if (rel === "" || rel.split("/").includes("..")) throw failedPrecondition(`mountpoint ${JSON.stringify(mountpoint)} is not a valid instance id`);
    return join(this.opts.mountpoint, rel);
  }

  async mount(mountpoint: string, req: MountRequest): Promise<void> {
    if (req.fs_type !== "rafs") throw notImplemented(`fs_type ${JSON.stringify(req.fs_type)} is not supported (rafs)`);
    if (this.instances.has(mountpoint)) throw failedPrecondition(`an instance is already mounted at ${mountpoint}`);
    const config = req.config ? parseDaemonConfig(req.config, `mount request for ${mountpoint}`) : this.opts.config;
    if (!config) throw failedPrecondition(`mount request for ${mountpoint} carries no config and the daemon has none`);
    const inst = await mountInstance({
      id: mountpoint,
      bootstrap: req.source,
      mountpoint: this.instancePath(mountpoint),
      config,
      blobfs: this.blobfsMount(config),
      prefetchFiles: req.prefetch_files,
      log: this.backendLog,
    });
    this.instances.set(mountpoint, inst);
    if (this.sm.state === "INIT") this.sm.fire("Mount");
    this.settle();
  }

  async remount(mountpoint: string, req: MountRequest): Promise<void> {
    await this.umount(mountpoint);
    await this.mount(mountpoint, req);
  }

  async umount(mountpoint: string): Promise<void> {
    const inst = this.instances.get(mountpoint);
    if (!inst) throw notFound(`no instance is mounted at ${mountpoint}`);
    await inst.umount();
    this.instances.delete(mountpoint);
    this.settle();
  }

  private one(id: string | undefined): Instance {
    if (id !== undefined) {
      const i = this.instances.get(id);
      if (!i) throw notFound(`NoCounter: no instance ${id}`);
      return i;
    }
    if (this.instances.size !== 1) throw notFound("NoCounter: name the instance with id=");
    return [...this.instances.values()][0] as Instance;
  }

  private stats() {
    return this.blobfs?.fs.stats ?? { reads: 0, readErrors: 0, fetches: 0, fetchedBytes: 0, chunksFetched: 0, prefetchRequests: 0, prefetchBytes: 0 };
  }

  fsMetrics(id: string | undefined): object {
    const i = this.one(id);
    const s = this.stats();
    return {
      files_account_enabled: false,
      access_pattern_enabled: false,
      record_latest_read_files_enabled: false,
      measure_latency: false,
      id: i.id,
      nr_opens: 0,
      data_read: s.fetchedBytes,
      block_count_read: [],
      fop_hits: readFop(s.reads - s.readErrors),
      fop_errors: readFop(s.readErrors),
      fop_cumulative_latency_total: [],
      read_latency_dist: [],
    };
  }

  blobcacheMetrics(id: string | undefined): object {
    const i = this.one(id);
    const s = this.stats();
    return {
      underlying_files: this.blobfs?.fs.underlyingFiles(i.blobIds) ?? [],
      store_path: i.config.workDir,
      partial_hits: 0,
      whole_hits: 0,
      total: s.reads,
      entries_count: s.chunksFetched,
      prefetch_data_amount: s.prefetchBytes,
      prefetch_requests_count: s.prefetchRequests,
      prefetch_workers: i.config.prefetch.enable ? i.config.prefetch.threadsCount : 0,
      prefetch_unmerged_chunks: 0,
      prefetch_cumulative_time_millis: 0,
      prefetch_begin_time_secs: 0,
      prefetch_begin_time_millis: 0,
      prefetch_end_time_secs: 0,
      prefetch_end_time_millis: 0,
      buffered_backend_size: 0,
      data_all_ready: this.blobfs?.fs.allReady() ?? false,
    };
  }

  backendMetrics(id: string | undefined): object {
    this.one(id);
    const s = this.stats();
    return { read_count: s.fetches, read_errors: 0, read_amount_total: s.fetchedBytes };
  }

  inflight(): object[] {
    return [];
  }

  getConfig(): object {
    return {};
  }

  /** `GET /api/v1/rafsnap/prefetch-list`: see {@link instancePrefetchList}; NotFound as {@link one}. */
  prefetchList(id: string | undefined): PrefetchListReport {
    const i = this.one(id);
    return instancePrefetchList(i.bootstrap, MAX_BOOTSTRAP_BYTES, this.blobfs?.fs.accessRecords(i.blobIds) ?? new Map());
  }

  /**
   * `PUT /api/v1/config?id=…` with `{"registry_auth": "<base64 user:password>"}`: replaces the
   * registry credentials of instance `id` (every instance for `/` or no id, as the dedicated
   * daemon's single instance is addressed). InvalidArgument for another body; NotFound for an
   * unknown id. The credentials are never logged.
   */
  putConfig(id: string | undefined, body: Record<string, unknown>): void {
    const auth = body.registry_auth;
    if (typeof auth !== "string" || auth === "") throw invalidArgument("config update: registry_auth (base64 of user:password) is the only supported field");
    const credentials = decodeAuth(auth, "registry_auth");
    const targets = id === undefined || id === "/" ? [...this.instances.values()] : [this.one(id)];
    for (const i of targets) {
      if (i.config.backend.type !== "registry" || !i.backend.setAuth) throw invalidArgument(`instance ${i.id}: its backend is not a registry`);
      i.backend.setAuth({ credentials });
      i.config.backend.auth = auth;
    }
    this.opts.logger.info(`registry credentials replaced for ${targets.length} instance(s)`);
  }

  /** Unmounts every instance (SIGTERM/SIGINT). */
  async shutdown(): Promise<void> {
    for (const [k, inst] of this.instances) {
      await inst.umount().catch((e) => this.opts.logger.warn(`umount of ${k} failed`, e));
      this.instances.delete(k);
    }
    this.blobfs?.stop();
    this.blobfs = undefined;
  }
}

/** Operations nydusd counts per FUSE op (getattr … batch_forget); reads are at index 4. */
const FOPS = 15;
const FOP_READ = 4;

/** A per-operation counter array in nydusd's layout with only `reads` set (blobfs counts reads only). */
function readFop(reads: number): number[] {
  return Array.from({ length: FOPS }, (_, i) => (i === FOP_READ ? Math.max(0, reads) : 0));
}
