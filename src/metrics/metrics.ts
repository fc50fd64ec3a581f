import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { processStats } from "./proc.ts";

/**
 * Label values of `snapshot_operation`: the four snapshotter calls nydus-snapshotter times
 * (its names, so dashboards keep working).
 */
export type SnapshotOperation = "PREPARE" | "MOUNTS" | "REMOVE" | "CLEANUP";

/** Label values of `nydusd_event`: a daemon reached RUNNING, died, or was destroyed. */
export type DaemonEvent = "RUNNING" | "DIED" | "DESTROYED";

/** Bucket bounds (ms) of the snapshot operation histogram, as nydus-snapshotter has them. */
export const OPERATION_BUCKETS_MS = [0.5, 1, 5, 10, 50, 100, 150, 200, 250, 300, 350, 400, 600, 1000];
/** Bucket bounds of nydusd's per-image block size histogram (`block_count_read`), in KiB-ish units as nydusd counts them. */
export const READ_BLOCK_BUCKETS = [1, 4, 16, 64, 128, 512, 1024, 2048];
/** Bucket bounds (µs) of nydusd's read latency histogram (`read_latency_dist`). */
export const READ_LATENCY_BUCKETS_US = [1, 20, 50, 100, 500, 1000, 2000, 4000];

/** The blob cache GC's counters, read at scrape time (see `NydusFs.gcStats`). */
export interface GcCounters {
  inUse: number;
  deleted: number;
  deletionErrors: number;
}

/** Gauges fed from nydusd's `GET /api/v1/metrics/blobcache`, by the field they come from. */
export const CACHE_GAUGES = {
  partial_hits: ["nydusd_cache_partial_hits", "Cache reads that needed part of a chunk."],
  whole_hits: ["nydusd_cache_whole_hits", "Cache reads that needed whole chunks."],
  total: ["nydusd_cache_total_requests", "Cache read requests; hit ratio = (partial_hits + whole_hits) / total."],
  entries_count: ["nydusd_cache_entries_count", "Chunks present in the cache."],
  prefetch_data_amount: ["nydusd_cache_prefetch_data_bytes", "Bytes prefetched."],
  prefetch_requests_count: ["nydusd_cache_prefetch_requests_count", "Prefetch requests issued."],
  prefetch_workers: ["nydusd_cache_prefetch_workers", "Prefetch workers."],
  prefetch_unmerged_chunks: ["nydusd_cache_prefetch_unmerged_chunks", "Prefetched chunks not merged into larger requests."],
  prefetch_cumulative_time_millis: ["nydusd_cache_prefetch_cumulative_time_millis", "Summed latency of prefetch requests, in milliseconds."],
  prefetch_duration_millis: ["nydusd_cache_prefetch_duration_millis", "Wall-clock duration of the prefetch, in milliseconds."],
  buffered_backend_size: ["nydusd_cache_buffered_backend_size", "Bytes buffered from the backend."],
} as const;
export type CacheField = keyof typeof CACHE_GAUGES;

/** One image's bucket counters (not cumulative: one count per bucket, as nydusd reports them). */
type Buckets = Map<string, readonly number[]>;

/**
 * A histogram whose buckets are set wholesale from counters a daemon reports (nydusd keeps
 * them; rafsnap only republishes), one series per `image_ref`. Registered in a prom-client
 * registry as a custom metric; `sum` is estimated as Σ bound × count, as nydus-snapshotter does.
 */
class ReportedHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private series: Buckets = new Map();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
  ) {}

  /** Replaces every series; counters whose length is not that of the bounds are skipped. */
  replace(series: Buckets): void {
    this.series = new Map([...series].filter(([, c]) => c.length === this.bounds.length));
  }

  get() {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const [image_ref, counts] of this.series) {
      let count = 0;
      let sum = 0;
      counts.forEach((c, i) => {
        count += c;
        sum += c * (this.bounds[i] as number);
        values.push({ metricName: `${this.name}_bucket`, labels: { le: this.bounds[i] as number, image_ref }, value: count });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf", image_ref }, value: count });
      values.push({ metricName: `${this.name}_sum`, labels: { image_ref }, value: sum });
      values.push({ metricName: `${this.name}_count`, labels: { image_ref }, value: count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series = new Map();
  }
}

/**
 * Every Prometheus metric rafsnap exports, under nydus-snapshotter's names, types, label
 * names and units (docs/metrics.md lists them), in one registry owned by whoever made this
 * object — the composition root, which hands it to the gRPC edge, the daemon manager and the
 * collector. Nothing here does I/O except the process gauges, which read `/proc/self` when
 * scraped (a failed read leaves that gauge at its last value). Methods never throw.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly snapshotOps: Histogram<"snapshot_operation">;
  readonly nydusdCounts: Gauge<"version">;
  readonly nydusdEvents: Counter<"nydusd_event">;
  readonly nydusdRss: Gauge<"daemon_id">;
  readonly nydusdImageInfo: Gauge<"daemon_id" | "image_ref">;
  readonly readBytes: Gauge<"image_ref">;
  readonly readHits: Gauge<"image_ref">;
  readonly readErrors: Gauge<"image_ref">;
  readonly hungIo: Gauge;
  readonly readBlocks: ReportedHistogram;
  readonly readLatency: ReportedHistogram;
  readonly cache: Record<CacheField, Gauge<"image_ref">>;
  readonly cacheUsageKb: Gauge;
  /** Credential renewal attempts per image, `result` success or failure (nydus-snapshotter's names). */
  readonly credentialRenewals: Counter<"image_ref" | "result">;
  /** Credentials renewal keeps per image (1 while the image is mounted and renewed). */
  readonly credentialStoreEntries: Gauge<"image_ref">;
  private gc: () => GcCounters = () => ({ inUse: 0, deleted: 0, deletionErrors: 0 });

  constructor() {
    const registers = [this.registry];
    this.snapshotOps = new Histogram({
      name: "snapshotter_snapshot_operation_elapsed_milliseconds",
      help: "Time the snapshot operations took, in milliseconds.",
      labelNames: ["snapshot_operation"],
      buckets: OPERATION_BUCKETS_MS,
      registers,
    });
    this.credentialRenewals = new Counter({
      name: "snapshotter_credential_renewals_total",
      help: "Credential renewal attempts, by image reference and result (success or failure).",
      labelNames: ["image_ref", "result"],
      registers,
    });
    this.credentialStoreEntries = new Gauge({
      name: "snapshotter_credential_store_entries",
      help: "Credentials renewal keeps, by image reference.",
      labelNames: ["image_ref"],
      registers,
    });
    this.nydusdCounts = new Gauge({ name: "nydusd_counts", help: "nydusd daemons running, by daemon version.", labelNames: ["version"], registers });
    this.nydusdEvents = new Counter({
      name: "nydusd_lifetime_event_counts",
      help: "nydusd lifetime events (RUNNING, DIED, DESTROYED).",
      labelNames: ["nydusd_event"],
      registers,
    });
    this.nydusdRss = new Gauge({ name: "nydusd_rss_kilobytes", help: "Resident memory of each nydusd, in KiB.", labelNames: ["daemon_id"], registers });
    this.nydusdImageInfo = new Gauge({
      name: "nydusd_image_info",
      help: "1 for each image a nydusd serves.",
      labelNames: ["daemon_id", "image_ref"],
      registers,
    });
    const perImage = (name: string, help: string) => new Gauge({ name, help, labelNames: ["image_ref"] as const, registers });
    this.readBytes = perImage("nydusd_total_read_bytes", "Bytes read from the image's filesystem.");
    this.readHits = perImage("nydusd_read_hits", "Successful reads from the image's filesystem.");
    this.readErrors = perImage("nydusd_read_errors", "Failed reads from the image's filesystem.");
    this.hungIo = new Gauge({ name: "nydusd_hung_io_counts", help: "Requests in flight in nydusd for longer than hung_io_interval.", registers });
    this.readBlocks = new ReportedHistogram("nydusd_cumulative_read_block_bytes", "Reads by block size, as nydusd buckets them.", READ_BLOCK_BUCKETS);
    this.readLatency = new ReportedHistogram("nydusd_read_latency_microseconds", "Read latency, in microseconds.", READ_LATENCY_BUCKETS_US);
    // prom-client accepts any object with name/help/type/get as a metric.
    this.registry.registerMetric(this.readBlocks as never);
    this.registry.registerMetric(this.readLatency as never);
    this.cache = Object.fromEntries(Object.entries(CACHE_GAUGES).map(([field, [name, help]]) => [field, perImage(name, help)])) as Record<
      CacheField,
      Gauge<"image_ref">
    >;
    this.cacheUsageKb = new Gauge({ name: "snapshotter_cache_usage_kilobytes", help: "Disk space the blob cache directory uses, in KiB.", registers });
    const gc = () => this.gc();
    new Gauge({
      name: "snapshotter_cache_blobs_in_use",
      help: "Blobs the mounted images read, as of the last cache GC.",
      registers,
      collect() {
        this.set(gc().inUse);
      },
    });
    observedCounter(this.registry, "snapshotter_cache_blobs_deleted_total", "Blobs the cache GC removed.", () => gc().deleted);
    observedCounter(this.registry, "snapshotter_cache_blob_deletion_errors_total", "Blobs the cache GC failed to remove.", () => gc().deletionErrors);
    this.processGauges();
  }

  /**
   * Runs `fn` and records how long it took under `op`, whether it resolves or throws (the
   * error is rethrown unchanged).
   */
  async time<T>(op: SnapshotOperation, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.snapshotOps.observe({ snapshot_operation: op }, performance.now() - t0);
    }
  }

  /** Reads the cache GC's counters from `read` at each scrape (the cache's owner keeps them). */
  observeCacheGc(read: () => GcCounters): void {
    this.gc = read;
  }

  /** The exposition text (Prometheus text format 0.0.4) and its content type. */
  async exposition(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  /** snapshotter_* gauges of this process, read from /proc at scrape time. */
  private processGauges(): void {
    const registers = [this.registry];
    const started = Date.now();
    let last = { at: performance.now(), cpu: process.cpuUsage() };
    const g = (name: string, help: string, value: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = value();
          if (v !== undefined) this.set(v);
        },
      });
    g("snapshotter_memory_usage_kilobytes", "Resident memory of the snapshotter, in KiB.", () => process.memoryUsage.rss() / 1024);
    g("snapshotter_cpu_user_time_seconds", "CPU time the snapshotter spent in user mode, in seconds.", () => process.cpuUsage().user / 1e6);
    g("snapshotter_cpu_system_time_seconds", "CPU time the snapshotter spent in the kernel, in seconds.", () => process.cpuUsage().system / 1e6);
    g("snapshotter_cpu_usage_percentage", "CPU use of the snapshotter since the previous scrape, in percent of one core.", () => {
      const now = { at: performance.now(), cpu: process.cpuUsage() };
      const wallUs = (now.at - last.at) * 1000;
      const used = now.cpu.user - last.cpu.user + now.cpu.system - last.cpu.system;
      last = now;
      return wallUs > 0 ? (100 * used) / wallUs : undefined;
    });
    g("snapshotter_run_time_seconds", "Seconds since the snapshotter started.", () => (Date.now() - started) / 1000);
    g("snapshotter_fd_counts", "Open file descriptors of the snapshotter.", () => processStats("self")?.fds);
    g("snapshotter_thread_counts", "Threads of the snapshotter.", () => processStats("self")?.threads);
  }
}

/** A counter whose value is read from `value` at scrape time (a monotonic count kept elsewhere). */
function observedCounter(registry: Registry, name: string, help: string, value: () => number): void {
  registry.registerMetric({
    name,
    help,
    type: "counter",
    aggregator: "sum",
    get: () => ({ name, help, type: "counter", aggregator: "sum", values: [{ labels: {}, value: value() }] }),
    reset: () => {},
  } as never);
}
