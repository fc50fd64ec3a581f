import type { Logger } from "../log/index.ts";
import { CACHE_GAUGES, type CacheField, type Metrics } from "./metrics.ts";
import { processStats } from "./proc.ts";
import { isNotFound } from "../errdefs/index.ts";
import { diskUsage } from "../sys/index.ts";

/** Index of the read operation in nydusd's per-operation arrays (`fop_hits`, `fop_errors`). */
export const FOP_READ = 4;

/** The metrics calls of one nydusd's HTTP API (docs/compat.md §5); each may reject. */
export interface NydusdMetricsApi {
  /** `GET /api/v1/metrics[?id=]`: FsIoStats JSON. */
  fsMetrics(id: string | undefined): Promise<unknown>;
  /** `GET /api/v1/metrics/blobcache[?id=]`. */
  cacheMetrics(id: string | undefined): Promise<unknown>;
  /** `GET /api/v1/metrics/inflight`: requests in flight (empty when idle). */
  inflight(): Promise<unknown[]>;
}

/** A daemon as the collector sees it (built by the daemon manager at each round). */
export interface WatchedDaemon {
  id: string;
  pid: number;
  /** Only RUNNING daemons are asked for fs, cache and inflight metrics. */
  running: boolean;
  /** The images it serves; `apiId` is the `id=` query (`/<snapshot>` on a shared daemon, undefined on a dedicated one). */
  images: { imageRef: string; apiId: string | undefined }[];
  api: NydusdMetricsApi;
}

/** What the collector needs; built by the composition root. */
export interface CollectorOptions {
  metrics: Metrics;
  /** The daemons now; called once per round. */
  daemons: () => WatchedDaemon[];
  /** Blob cache directory measured for `snapshotter_cache_usage_kilobytes`; none when undefined. */
  cacheDir: string | undefined;
  collectIntervalMs: number;
  hungIoIntervalMs: number;
  logger: Logger;
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map(num) : []);

/**
 * Pulls the metrics that live in the daemons and on disk into {@link Metrics}, on timers:
 * every `collectIntervalMs` the fs and blob cache metrics of every image of every RUNNING
 * daemon, every daemon's RSS, the image map and the cache directory's size; every
 * `hungIoIntervalMs` the in-flight requests (those older than that interval count as hung).
 * Each round replaces the per-image series wholesale, so images no longer served drop out.
 * A daemon that fails to answer is logged at debug and left out of that round; a round never
 * throws. Rounds do not overlap: a slow one delays the next.
 */
export class MetricsCollector {
  private timers: ReturnType<typeof setTimeout>[] = [];
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly opts: CollectorOptions) {
    this.log = opts.logger.withTag("metrics");
  }

  /** Runs a first round at once, then one per interval, until {@link stop}. */
  start(): void {
    const loop = (run: () => Promise<void>, everyMs: number) => {
      const tick = async () => {
        await run().catch((e) => this.log.warn(`metrics round failed: ${(e as Error).message}`));
        if (!this.stopped) this.timers.push(setTimeout(tick, everyMs));
      };
      void tick();
    };
    loop(() => this.collect(), this.opts.collectIntervalMs);
    loop(() => this.collectInflight(), this.opts.hungIoIntervalMs);
  }

  /** Stops the timers; a round in progress finishes but schedules no other. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** One collect_interval round (see the class). */
  async collect(): Promise<void> {
    const m = this.opts.metrics;
    const daemons = this.opts.daemons();
    const fs: { imageRef: string; stats: Record<string, unknown> }[] = [];
    const cache: { imageRef: string; stats: Record<string, unknown> }[] = [];
    await Promise.all(
      daemons
        .filter((d) => d.running)
        .flatMap((d) =>
          d.images.map(async (img) => {
            const [f, c] = await Promise.allSettled([d.api.fsMetrics(img.apiId), d.api.cacheMetrics(img.apiId)]);
            if (f.status === "fulfilled" && f.value && typeof f.value === "object")
              fs.push({ imageRef: img.imageRef, stats: f.value as Record<string, unknown> });
            else if (f.status === "rejected") this.log.debug(`nydusd ${d.id}: fs metrics of ${img.imageRef}: ${(f.reason as Error).message}`);
            if (c.status === "fulfilled" && c.value && typeof c.value === "object")
              cache.push({ imageRef: img.imageRef, stats: c.value as Record<string, unknown> });
            else if (c.status === "rejected") this.log.debug(`nydusd ${d.id}: cache metrics of ${img.imageRef}: ${(c.reason as Error).message}`);
          }),
        ),
    );
    // All answers are in: replace the series in one synchronous step (no scrape sees half).
    for (const g of [m.readBytes, m.readHits, m.readErrors]) g.reset();
    const blocks = new Map<string, number[]>();
    const latency = new Map<string, number[]>();
    for (const { imageRef, stats } of fs) {
      m.readBytes.set({ image_ref: imageRef }, num(stats.data_read));
      m.readHits.set({ image_ref: imageRef }, nums(stats.fop_hits)[FOP_READ] ?? 0);
      m.readErrors.set({ image_ref: imageRef }, nums(stats.fop_errors)[FOP_READ] ?? 0);
      blocks.set(imageRef, nums(stats.block_count_read));
      latency.set(imageRef, nums(stats.read_latency_dist));
    }
    m.readBlocks.replace(blocks);
    m.readLatency.replace(latency);
    for (const g of Object.values(m.cache)) g.reset();
    for (const { imageRef, stats } of cache) {
      for (const field of Object.keys(CACHE_GAUGES) as CacheField[]) m.cache[field].set({ image_ref: imageRef }, cacheValue(stats, field));
    }
    m.nydusdRss.reset();
    m.nydusdImageInfo.reset();
    for (const d of daemons) {
      const rss = d.pid > 0 ? processStats(d.pid)?.rssKb : undefined;
      if (rss !== undefined) m.nydusdRss.set({ daemon_id: d.id }, rss);
      for (const img of d.images) m.nydusdImageInfo.set({ daemon_id: d.id, image_ref: img.imageRef }, 1);
    }
    if (this.opts.cacheDir !== undefined) m.cacheUsageKb.set(await cacheUsageKb(this.opts.cacheDir));
  }

  /** One hung_io_interval round: counts requests in flight for at least that long. */
  async collectInflight(): Promise<void> {
    const now = Date.now() / 1000;
    const limit = this.opts.hungIoIntervalMs / 1000;
    let hung = 0;
    await Promise.all(
      this.opts
        .daemons()
        .filter((d) => d.running)
        .map(async (d) => {
          try {
            for (const r of await d.api.inflight()) {
              const ts = num((r as { timestamp_secs?: unknown } | null)?.timestamp_secs);
              if (ts > 0 && now - ts >= limit) hung++;
            }
          } catch (e) {
            this.log.debug(`nydusd ${d.id}: inflight metrics: ${(e as Error).message}`);
          }
        }),
    );
    this.opts.metrics.hungIo.set(hung);
  }
}

/**
 * The value of one cache gauge from a blobcache answer; the prefetch duration is derived from
 * its begin and end times, as nydusd reports no duration field.
 */
function cacheValue(stats: Record<string, unknown>, field: CacheField): number {
  if (field !== "prefetch_duration_millis") return num(stats[field]);
  const begin = num(stats.prefetch_begin_time_secs) * 1000 + num(stats.prefetch_begin_time_millis);
  const end = num(stats.prefetch_end_time_secs) * 1000 + num(stats.prefetch_end_time_millis);
  return end > begin ? end - begin : 0;
}

/**
 * Disk space of the blob cache directory in KiB, walked as Usage walks a snapshot (without
 * blocking the event loop); 0 while the directory does not exist. Other failures propagate
 * (the round is logged as failed).
 */
async function cacheUsageKb(dir: string): Promise<number> {
  try {
    return (await diskUsage(dir)).size / 1024;
  } catch (e) {
    if (isNotFound(e)) return 0;
    throw e;
  }
}
