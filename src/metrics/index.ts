export { type CollectorOptions, FOP_READ, MetricsCollector, type NydusdMetricsApi, type WatchedDaemon } from "./collector.ts";
export {
  CACHE_GAUGES,
  type DaemonEvent,
  type GcCounters,
  Metrics,
  OPERATION_BUCKETS_MS,
  READ_BLOCK_BUCKETS,
  READ_LATENCY_BUCKETS_US,
  type SnapshotOperation,
} from "./metrics.ts";
export { processStats, type ProcessStats } from "./proc.ts";
export { METRICS_PATH, type MetricsServer, parseListenAddress, serveMetrics } from "./server.ts";
