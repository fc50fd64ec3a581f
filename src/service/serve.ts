import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Snapshots } from "../../gen/containerd/services/snapshots/v1/snapshots_pb.ts";
import { type Config, durationMs } from "../config/index.ts";
import { failedPrecondition } from "../errdefs/index.ts";
import { listenUnix, type Registration, snapshotsService } from "../grpc/index.ts";
import type { Logger } from "../log/index.ts";
import { Metrics, MetricsCollector, type MetricsServer, serveMetrics } from "../metrics/index.ts";
import { PrefetchLists } from "../manager/index.ts";
import { socketAccepts } from "../mount/index.ts";
import { Snapshotter } from "../snapshot/index.ts";
import { DaemonStore, lockFile, MetaStore, openDb, systemClock } from "../store/index.ts";
import { serveSystem, SystemController, type SystemServer } from "../system/index.ts";
import { type AuthParts, buildAuth, startRenewal } from "./auth.ts";
import { type NydusParts, startNydus } from "./nydus.ts";
import { checkReadiness } from "./readiness.ts";

/** Name of the metadata database under the root. */
export const DB_FILE = "rafsnap.db";
/** Lock file under the root: one rafsnap process per root. */
export const LOCK_FILE = "rafsnap.lock";

/** A started snapshotter service. */
export interface Service {
  /** Resolves when the service has stopped (after {@link Service.stop}). */
  readonly done: Promise<void>;
  /** Stop accepting calls, finish in-flight ones (up to `graceMs`), close the store. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The composition root of `rafsnap serve`: creates the root (0700), locks it (one process
 * per root: FailedPrecondition when another holds it), opens the store
 * `<root>/rafsnap.db` (applying migrations), recovers the nydus daemons and instances
 * recorded there (see `startNydus`), opens the snapshotter (d_type check), runs the image
 * readiness check, and serves the snapshots API on `config.address`. Throws — having released whatever it had
 * opened — when any step fails (FailedPrecondition for a root without d_type, for a
 * non-socket file at the address).
 */
/**
 * FailedPrecondition when another server accepts connections on `config.address`: checked
 * before anything is created (the root, its log directory, its database), so a second
 * instance pointed at a live socket leaves no trace.
 */
export async function refuseLiveAddress(config: Config): Promise<void> {
  if (await socketAccepts(config.address)) throw failedPrecondition(`socket address ${config.address} is in use by another process`);
}

export async function startService(config: Config, logger: Logger): Promise<Service> {
  const log = logger.withTag("service");
  await refuseLiveAddress(config);
  mkdirSync(config.root, { recursive: true, mode: 0o700 });
  const lock = lockFile(join(config.root, LOCK_FILE));
  let store: MetaStore;
  let daemons: DaemonStore;
  try {
    const db = openDb(join(config.root, DB_FILE));
    const clock = systemClock();
    store = new MetaStore(db, clock);
    daemons = new DaemonStore(db, clock);
  } catch (e) {
    lock.release();
    throw e;
  }
  let server: Awaited<ReturnType<typeof listenUnix>>;
  let nydus: NydusParts | undefined;
  const metrics = new Metrics();
  let exporter: { server: MetricsServer; collector: MetricsCollector } | undefined;
  let system: SystemServer | undefined;
  let auth: AuthParts | undefined;
  let renewal: ReturnType<typeof startRenewal>;
  try {
    auth = buildAuth(config, logger);
    const prefetch = new PrefetchLists();
    nydus = await startNydus(config, daemons, logger, { metrics, prefetch, credentials: auth.lookup });
    const sn = await Snapshotter.open({
      root: config.root,
      store,
      logger,
      volatileAlways: config.snapshot.enable_overlayfs_volatile,
      remote: nydus?.fs,
      remoteStyle: { nydusOverlayfs: config.snapshot.enable_nydus_overlayfs, overlayfsPath: config.snapshot.nydus_overlayfs_path },
    });
    await checkReadiness(sn, store, daemons, nydus?.fs, nydus?.failed ?? new Map(), logger);
    const regs: Registration[] = [{ service: Snapshots, impl: snapshotsService(sn, metrics) }];
    if (config.metrics.address !== "") exporter = startMetrics(config, metrics, nydus, logger);
    if (config.system.enable) {
      const controller = new SystemController({ manager: nydus?.manager, store: daemons, prefetch, nydusdPath: config.daemon.nydusd_path, logger });
      system = await serveSystem(config.system.address, controller, { uid: config.system.uid, gid: config.system.gid }, logger);
    }
    const raw = auth.criProxy ? [auth.criProxy] : [];
    server = await listenUnix({ path: config.address, uid: config.uid, gid: config.gid }, regs, logger.withTag("grpc"), raw);
    if (nydus) renewal = startRenewal(config, auth, nydus.fs, logger, metrics);
  } catch (e) {
    await system?.stop();
    auth?.criProxy?.close();
    exporter?.collector.stop();
    await exporter?.server.stop();
    nydus?.manager.close();
    store.close();
    lock.release();
    throw e;
  }
  log.info(`rafsnap serving snapshots on ${config.address}, root ${config.root}`);
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  let stopping: Promise<void> | undefined;
  return {
    done,
    stop(graceMs?: number) {
      stopping ??= (async () => {
        await server.close(graceMs);
        await system?.stop();
        await renewal?.stop();
        auth?.criProxy?.close();
        exporter?.collector.stop();
        await exporter?.server.stop();
        if (nydus) await nydus.fs.close(config.cleanup_on_close);
        nydus?.manager.close();
        store.close();
        lock.release();
        log.info("stopped");
        resolveDone();
      })();
      return stopping;
    },
  };
}

/** Shortest collect and hung-IO interval: a "0s" in the config would otherwise spin. */
const MIN_METRICS_INTERVAL_MS = 1000;

/**
 * `[metrics] address` set: serves `metrics` there (throws InvalidArgument/FailedPrecondition
 * for an address that is malformed or cannot be bound) and starts collecting from the
 * manager's daemons every `collect_interval` (in-flight requests every `hung_io_interval`;
 * both at least 1 s).
 */
function startMetrics(config: Config, metrics: Metrics, nydus: NydusParts | undefined, logger: Logger): { server: MetricsServer; collector: MetricsCollector } {
  const server = serveMetrics(config.metrics.address, metrics, logger);
  const collector = new MetricsCollector({
    metrics,
    daemons: () => nydus?.manager.watched() ?? [],
    cacheDir: nydus ? config.cache_manager.cache_dir : undefined,
    collectIntervalMs: Math.max(MIN_METRICS_INTERVAL_MS, durationMs(config.metrics.collect_interval)),
    hungIoIntervalMs: Math.max(MIN_METRICS_INTERVAL_MS, durationMs(config.metrics.hung_io_interval)),
    logger,
  });
  collector.start();
  return { server, collector };
}

/**
 * Runs the service until SIGINT or SIGTERM, then stops it gracefully. Resolves when stopped.
 */
export async function runUntilSignal(config: Config, logger: Logger): Promise<void> {
  const svc = await startService(config, logger);
  const onSignal = (sig: NodeJS.Signals) => {
    logger.withTag("service").info(`received ${sig}, shutting down`);
    void svc.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await svc.done;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
