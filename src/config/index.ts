/**
 * Snapshotter configuration: the config.toml schema and defaults, loading and validation,
 * and TOML output. See docs/compat.md §1 for the keys.
 */
export {
  defaultConfig,
  parseConfig,
  type ParseOptions,
  type ParseResult,
} from "./schema.ts";
export {
  DAEMON_MODES,
  EXPORT_MODES,
  FAILOVER_POLICIES,
  FS_DRIVERS,
  LOG_LEVELS,
  MAX_ROOT_BYTES,
  MAX_SOCKET_PATH_BYTES,
  RECOVER_POLICIES,
  type AuthConfig,
  type CacheManagerConfig,
  type CgroupConfig,
  type Config,
  type DaemonConfig,
  type DaemonMode,
  type DeepReadonly,
  type ExperimentalConfig,
  type ExportMode,
  type FailoverPolicy,
  type FsDriver,
  type ImageConfig,
  type LogConfig,
  type LogLevel,
  type MetricsConfig,
  type MirrorsConfig,
  type RecoverPolicy,
  type RemoteConfig,
  type SnapshotConfig,
  type SystemConfig,
  type SystemDebugConfig,
  type TarfsConfig,
} from "./types.ts";
export {
  DEFAULT_CONFIG_PATH,
  DEFAULT_CONFIG_TOML,
  applyFlags,
  decodeToml,
  loadConfig,
  type FlaggedDocument,
  type Flags,
  type LoadOptions,
  type LoadedConfig,
} from "./load.ts";
export { REDACTED, configToToml, isSecretKey, type TomlOptions } from "./toml.ts";
export { durationMs, isGoDuration, nanosToGoDuration, parseGoDuration } from "./duration.ts";
export { unbuiltFeatureWarnings } from "./unbuilt.ts";
