/**
 * The types of the snapshotter configuration (nydus-snapshotter's `config.toml`, key names as
 * written in TOML) and the allowed values of its enum keys. Defaults and validation live in
 * `schema.ts`.
 */

/** `daemon.fs_driver` values. */
export const FS_DRIVERS = ["fusedev", "fscache", "blockdev", "proxy", "nodev"] as const;
/** How RAFS instances are mounted: FUSE, fscache+EROFS, tarfs block devices, Kata proxy, or none. */
export type FsDriver = (typeof FS_DRIVERS)[number];

/** `daemon_mode` values after normalisation (`multiple` is read as `dedicated`). */
export const DAEMON_MODES = ["dedicated", "shared", "none"] as const;
/** One nydusd per RAFS instance (`dedicated`), one per driver (`shared`), or none. */
export type DaemonMode = (typeof DAEMON_MODES)[number];

/** `daemon.recover_policy` values: what happens when a nydusd dies. */
export const RECOVER_POLICIES = ["none", "restart", "failover"] as const;
/** See {@link RECOVER_POLICIES}. */
export type RecoverPolicy = (typeof RECOVER_POLICIES)[number];

/** `daemon.failover_policy` values, passed to nydusd as `--failover-policy`. */
export const FAILOVER_POLICIES = ["none", "resend", "flush"] as const;
/** See {@link FAILOVER_POLICIES}. */
export type FailoverPolicy = (typeof FAILOVER_POLICIES)[number];

/** `log.level` values (also used for nydusd's `--log-level`). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
/** See {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * `experimental.tarfs.export_mode` values; `""` exports nothing. The shipped Go config also
 * documents `"none"`, which is accepted and stored as `""`.
 */
export const EXPORT_MODES = [
  "",
  "layer_verity_only",
  "image_verity_only",
  "layer_block",
  "image_block",
  "layer_block_with_verity",
  "image_block_with_verity",
] as const;
/** See {@link EXPORT_MODES}. */
export type ExportMode = (typeof EXPORT_MODES)[number];

/** Longest `root`: `<root>/socket/<20-char id>/api?.sock` must fit the 108-byte `sun_path`. */
export const MAX_ROOT_BYTES = 70;
/** Longest unix socket path: `sun_path` is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** `[system.debug]` */
export interface SystemDebugConfig {
  /** Measure each nydusd's CPU use over this many seconds after it starts; 0 = off. */
  daemon_cpu_profile_duration_secs: number;
  /** TCP address of a pprof-style debug server (only with `system.enable`); "" = off. */
  pprof_address: string;
}

/** `[system]`: the system controller HTTP API on a unix socket. */
export interface SystemConfig {
  enable: boolean;
  /** Unix socket path; must be absolute and fit `sun_path` when `enable` is set. */
  address: string;
  /** Owner set on the socket. */
  uid: number;
  gid: number;
  debug: SystemDebugConfig;
}

/** `[daemon]`: how nydusd processes are started and recovered. */
export interface DaemonConfig {
  /** nydusd JSON template; read only for fusedev/fscache. */
  nydusd_config: string;
  nydusd_path: string;
  /** Used by tarfs and stargz conversion. */
  nydusimage_path: string;
  fs_driver: FsDriver;
  recover_policy: RecoverPolicy;
  /** `--thread-num` / `--fscache-threads`, 0 = nydusd's default (flag left out). 0..1024. */
  threads_number: number;
  /** nydusd `--log-rotation-size` in MB; 0 = flag left out. */
  log_rotation_size: number;
  failover_policy: FailoverPolicy;
}

/** `[cgroup]`: put nydusd processes in the `system.slice/nydusd` cgroup. */
export interface CgroupConfig {
  enable: boolean;
  /** "", bytes, "200MiB", "200Mi" or "10%". */
  memory_limit: string;
}

/** `[log]`: the snapshotter's own log. */
export interface LogConfig {
  log_to_stdout: boolean;
  level: LogLevel;
  /** Directory of `nydus-snapshotter.log`; `<root>/logs` when empty. */
  dir: string;
  /** MB. */
  log_rotation_max_size: number;
  log_rotation_max_backups: number;
  /** Days; 0 = keep forever. */
  log_rotation_max_age: number;
  log_rotation_local_time: boolean;
  log_rotation_compress: boolean;
}

/** `[metrics]`: Prometheus endpoint `/v1/metrics`. */
export interface MetricsConfig {
  /** TCP listen address such as ":9110"; "" = disabled. */
  address: string;
  /** Go duration. */
  hung_io_interval: string;
  /** Go duration. */
  collect_interval: string;
}

/** `[remote.mirrors_config]` */
export interface MirrorsConfig {
  /** Directory of containerd-style `hosts.toml` dirs; must exist when set. */
  dir: string;
}

/** `[remote.auth]`: where registry credentials come from. */
export interface AuthConfig {
  enable_kubeconfig_keychain: boolean;
  /** "" = `$KUBECONFIG`, then `~/.kube/config`. */
  kubeconfig_path: string;
  enable_cri_keychain: boolean;
  /** "" = `/run/containerd/containerd.sock`. */
  image_service_address: string;
  enable_kubelet_credential_providers: boolean;
  credential_provider_config: string;
  credential_provider_bin_dir: string;
  /** Go duration; "0s" = no renewal. */
  credential_renewal_interval: string;
}

/** `[remote]` */
export interface RemoteConfig {
  /** Unused by nydus-snapshotter (kept for compatibility). */
  convert_vpc_registry: boolean;
  skip_ssl_verify: boolean;
  mirrors_config: MirrorsConfig;
  auth: AuthConfig;
}

/** `[snapshot]`: the mounts returned to containerd. */
export interface SnapshotConfig {
  enable_nydus_overlayfs: boolean;
  /** Mount type becomes `fuse.<value>`. */
  nydus_overlayfs_path: string;
  enable_kata_volume: boolean;
  sync_remove: boolean;
  enable_overlayfs_volatile: boolean;
}

/** `[cache_manager]` */
export interface CacheManagerConfig {
  /** Unused by nydus-snapshotter (kept for compatibility). */
  disable: boolean;
  /** Go duration; unused by nydus-snapshotter. */
  gc_period: string;
  /** Blob cache directory; `<root>/cache` when empty. */
  cache_dir: string;
}

/** `[image]`: bootstrap signature verification. */
export interface ImageConfig {
  public_key_file: string;
  validate_signature: boolean;
}

/** `[experimental.tarfs]` */
export interface TarfsConfig {
  enable_tarfs: boolean;
  mount_tarfs_on_host: boolean;
  tarfs_hint: boolean;
  /** 0 = default concurrency. */
  max_concurrent_proc: number;
  export_mode: ExportMode;
}

/** `[experimental]` */
export interface ExperimentalConfig {
  enable_stargz: boolean;
  enable_referrer_detect: boolean;
  enable_index_detect: boolean;
  /** Only takes effect when `system.enable` is also set. */
  enable_backend_source: boolean;
  tarfs: TarfsConfig;
}

/**
 * The effective snapshotter configuration, as returned by {@link parseConfig}: every key
 * present, validated, with derived paths (`log.dir`, `cache_manager.cache_dir`) filled in and
 * `daemon_mode` normalised. Passed by value to the modules that need it; there is no global.
 */
export interface Config {
  /** Config format version; always 1. */
  version: 1;
  /** State directory; absolute, at most {@link MAX_ROOT_BYTES} bytes. */
  root: string;
  /** gRPC snapshots socket; absolute, at most {@link MAX_SOCKET_PATH_BYTES} bytes. */
  address: string;
  /** Owner set on the gRPC socket. */
  uid: number;
  gid: number;
  daemon_mode: DaemonMode;
  /** Unmount every RAFS instance when the snapshotter closes. */
  cleanup_on_close: boolean;
  system: SystemConfig;
  daemon: DaemonConfig;
  cgroup: CgroupConfig;
  log: LogConfig;
  metrics: MetricsConfig;
  remote: RemoteConfig;
  snapshot: SnapshotConfig;
  cache_manager: CacheManagerConfig;
  image: ImageConfig;
  experimental: ExperimentalConfig;
}

/** Read-only view of a nested object. */
export type DeepReadonly<T> = { readonly [K in keyof T]: T[K] extends object ? DeepReadonly<T[K]> : T[K] };
