/**
 * The snapshotter configuration: every key of nydus-snapshotter's `config.toml`, its default
 * and its validation, in this one file (style-anchors §4 convention 4; soci `config/`).
 *
 * Key names are the TOML names, snake_case, so a Go config file, our `Config` object and the
 * docs all use the same words. Facts: shared/reference/nydus-facts.md §1.
 *
 * Decisions that differ from the Go snapshotter on purpose:
 * - Go merges defaults with `mergo.Merge`, which fills in every *zero* value, so a `false`
 *   (or `0`, or `""`) written in the file can never turn off or clear a non-zero default:
 *   `log_rotation_local_time = false` is silently `true` there. Here a value written in the
 *   file is always the value used: `false` turns a default `true` off, `0` means 0, and `""`
 *   means empty (and is rejected where empty is invalid, e.g. `root` or an enum key).
 * - `daemon_mode = "multiple"` (Go's default) is accepted and stored as `"dedicated"`, which
 *   is what Go means by it (`parseDaemonMode`). Our own default is written as `"dedicated"`.
 * - `daemon.nydusd_path` defaults to rafsnap's built-in data plane link instead of a `$PATH`
 *   lookup, and `daemon.nydusimage_path` to `/usr/local/bin/nydus-image`.
 * - A missing top-level `version` counts as 1; a present one must be 1 (Go requires it in a file).
 * - Unknown keys are reported as warnings, never errors (go-toml v1 ignores them silently).
 */

import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";
import {
  absolutePath,
  bool,
  duration,
  exists,
  int,
  isDirectory,
  isPlainObject,
  label,
  literal,
  memoryLimit,
  oneOf,
  problem,
  readTable,
  show,
  str,
  type AnySpec,
  type Check,
  type Ctx,
} from "./_checks.ts";

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

function deepFreeze<T>(o: T): DeepReadonly<T> {
  for (const v of Object.values(o as object)) if (typeof v === "object" && v !== null) deepFreeze(v);
  return Object.freeze(o) as DeepReadonly<T>;
}

/**
 * Every default, in one place: the "code default" column of nydus-facts §1.2 with rafsnap's
 * binary paths. Derived paths are "" here and filled in from `root` by {@link parseConfig}.
 * `default.toml` must say the same (pinned by a test).
 */
const DEFAULTS: DeepReadonly<Config> = deepFreeze<Config>({
  version: 1,
  root: "/var/lib/containerd/io.containerd.snapshotter.v1.nydus",
  address: "/run/containerd-nydus/containerd-nydus-grpc.sock",
  uid: 0,
  gid: 0,
  daemon_mode: "dedicated",
  cleanup_on_close: false,
  system: {
    enable: false,
    address: "/run/containerd-nydus/system.sock",
    uid: 0,
    gid: 0,
    debug: { daemon_cpu_profile_duration_secs: 0, pprof_address: "" },
  },
  daemon: {
    nydusd_config: "/etc/nydus/nydusd-config.json",
    // Our data plane is built in; packaging links this path to the rafsnap binary.
    nydusd_path: "/usr/libexec/rafsnap/nydusd",
    nydusimage_path: "/usr/local/bin/nydus-image",
    fs_driver: "fusedev",
    recover_policy: "restart",
    threads_number: 0,
    log_rotation_size: 100,
    failover_policy: "resend",
  },
  cgroup: { enable: false, memory_limit: "" },
  log: {
    log_to_stdout: false,
    level: "info",
    dir: "",
    log_rotation_max_size: 200,
    log_rotation_max_backups: 5,
    log_rotation_max_age: 0,
    log_rotation_local_time: true,
    log_rotation_compress: true,
  },
  metrics: { address: "", hung_io_interval: "10s", collect_interval: "1m" },
  remote: {
    convert_vpc_registry: false,
    skip_ssl_verify: false,
    mirrors_config: { dir: "" },
    auth: {
      enable_kubeconfig_keychain: false,
      kubeconfig_path: "",
      enable_cri_keychain: false,
      image_service_address: "",
      enable_kubelet_credential_providers: false,
      credential_provider_config: "",
      credential_provider_bin_dir: "",
      credential_renewal_interval: "0s",
    },
  },
  snapshot: {
    enable_nydus_overlayfs: false,
    nydus_overlayfs_path: "",
    enable_kata_volume: false,
    sync_remove: false,
    enable_overlayfs_volatile: false,
  },
  cache_manager: { disable: false, gc_period: "24h", cache_dir: "" },
  image: { public_key_file: "", validate_signature: false },
  experimental: {
    enable_stargz: false,
    enable_referrer_detect: false,
    enable_index_detect: false,
    enable_backend_source: false,
    tarfs: {
      enable_tarfs: false,
      mount_tarfs_on_host: false,
      tarfs_hint: false,
      max_concurrent_proc: 0,
      export_mode: "",
    },
  },
});

/** Per-key checks, mirroring the shape of {@link Config} (the compiler keeps them in step). */
type Spec<T> = { readonly [K in keyof T]-?: T[K] extends object ? Spec<T[K]> : Check<T[K]> };

const UID_MAX = 2 ** 32 - 2; // (uid_t)-1 means "unchanged" to chown(2)
const INT_MAX = 2 ** 31 - 1;
const SOCKET_WHY = "unix socket paths must fit the 108-byte sun_path";

const SPEC: Spec<Config> = {
  version: literal(1, "unsupported configuration version"),
  root: absolutePath(MAX_ROOT_BYTES, "nydusd API sockets <root>/socket/<id>/api.sock must fit the 108-byte sun_path"),
  address: absolutePath(MAX_SOCKET_PATH_BYTES, SOCKET_WHY),
  uid: int(0, UID_MAX),
  gid: int(0, UID_MAX),
  daemon_mode: oneOf(DAEMON_MODES, { multiple: "dedicated" }),
  cleanup_on_close: bool(),
  system: {
    enable: bool(),
    address: str(), // checked as a socket path below, when enabled
    uid: int(0, UID_MAX),
    gid: int(0, UID_MAX),
    debug: { daemon_cpu_profile_duration_secs: int(0, INT_MAX), pprof_address: str() },
  },
  daemon: {
    nydusd_config: str(),
    nydusd_path: str(),
    nydusimage_path: str(),
    fs_driver: oneOf(FS_DRIVERS),
    recover_policy: oneOf(RECOVER_POLICIES),
    threads_number: int(0, 1024),
    log_rotation_size: int(0, INT_MAX),
    failover_policy: oneOf(FAILOVER_POLICIES),
  },
  cgroup: { enable: bool(), memory_limit: memoryLimit() },
  log: {
    log_to_stdout: bool(),
    level: oneOf(LOG_LEVELS),
    dir: str(),
    log_rotation_max_size: int(0, INT_MAX),
    log_rotation_max_backups: int(0, INT_MAX),
    log_rotation_max_age: int(0, INT_MAX),
    log_rotation_local_time: bool(),
    log_rotation_compress: bool(),
  },
  metrics: { address: str(), hung_io_interval: duration(), collect_interval: duration() },
  remote: {
    convert_vpc_registry: bool(),
    skip_ssl_verify: bool(),
    mirrors_config: { dir: str() },
    auth: {
      enable_kubeconfig_keychain: bool(),
      kubeconfig_path: str(),
      enable_cri_keychain: bool(),
      image_service_address: str(),
      enable_kubelet_credential_providers: bool(),
      credential_provider_config: str(),
      credential_provider_bin_dir: str(),
      credential_renewal_interval: duration(),
    },
  },
  snapshot: {
    enable_nydus_overlayfs: bool(),
    nydus_overlayfs_path: str(),
    enable_kata_volume: bool(),
    sync_remove: bool(),
    enable_overlayfs_volatile: bool(),
  },
  cache_manager: { disable: bool(), gc_period: duration(), cache_dir: str() },
  image: { public_key_file: str(), validate_signature: bool() },
  experimental: {
    enable_stargz: bool(),
    enable_referrer_detect: bool(),
    enable_index_detect: bool(),
    enable_backend_source: bool(),
    tarfs: {
      enable_tarfs: bool(),
      mount_tarfs_on_host: bool(),
      tarfs_hint: bool(),
      max_concurrent_proc: int(0, INT_MAX),
      export_mode: oneOf(EXPORT_MODES, { none: "" }),
    },
  },
};

/** Options of {@link parseConfig}. */
export interface ParseOptions {
  /** Where the raw document came from (a file path), named in the error headline. */
  source?: string;
  /**
   * Keys set by something other than the document, mapped to what set them, e.g.
   * `{ "daemon.fs_driver": "--fs-driver" }`. Messages about those keys name the origin.
   */
  overrides?: Readonly<Record<string, string>>;
}

/** Result of {@link parseConfig}. */
export interface ParseResult {
  /** The effective configuration (a fresh object the caller may keep). */
  config: Config;
  /** One line per problem that did not stop loading, e.g. `unknown key daemon.foo (ignored)`. */
  warnings: string[];
}

/** Rules that involve more than one key, or the filesystem (nydus `ValidateConfig`). */
function checkRelations(c: Config, ctx: Ctx): void {
  const auth = c.remote.auth;
  if (auth.enable_cri_keychain && auth.enable_kubeconfig_keychain) {
    ctx.problems.push(
      `${label(ctx, "remote.auth.enable_cri_keychain")} = true and ` +
        `${label(ctx, "remote.auth.enable_kubeconfig_keychain")} = true: only one of the two keychains can be enabled`,
    );
  }
  const mirrors = c.remote.mirrors_config.dir;
  if (mirrors !== "" && !isDirectory(mirrors)) {
    problem(ctx, "remote.mirrors_config.dir", mirrors, "directory does not exist (set \"\" to disable mirrors)");
  }
  if (c.image.validate_signature && (c.image.public_key_file === "" || !exists(c.image.public_key_file))) {
    const why = c.image.public_key_file === "" ? "not set" : "file does not exist";
    const reason = `${why}; an existing public key file is required when image.validate_signature = true`;
    problem(ctx, "image.public_key_file", c.image.public_key_file, reason);
  }
  if (c.system.enable) {
    const r = absolutePath(MAX_SOCKET_PATH_BYTES, SOCKET_WHY)(c.system.address);
    if (!r.ok) problem(ctx, "system.address", c.system.address, `${r.reason} (required when system.enable = true)`);
  }
}

/**
 * Validates a raw configuration document (what `Bun.TOML.parse` returns, or `{}`) and
 * returns the effective {@link Config}:
 * - missing keys take their defaults; values written are used as written (see the file
 *   comment for how this differs from Go's `mergo` merge);
 * - `daemon_mode = "multiple"` becomes `"dedicated"`; `export_mode = "none"` becomes `""`;
 * - `daemon.fs_driver = "fscache"` forces `daemon_mode = "shared"`, as Go does (a warning is
 *   added when the document asked for another mode);
 * - empty `log.dir` becomes `<root>/logs`, empty `cache_manager.cache_dir` `<root>/cache`;
 * - unknown keys, at any depth, are ignored and reported in `warnings`.
 *
 * It reads the filesystem only to check that `remote.mirrors_config.dir` and (with
 * `validate_signature`) `image.public_key_file` exist.
 *
 * @throws RafsnapError of kind InvalidArgument listing every problem found, one per line,
 *   each naming the key path, the value given and what is allowed.
 */
export function parseConfig(raw: unknown, opts: ParseOptions = {}): ParseResult {
  const ctx: Ctx = { problems: [], warnings: [], given: new Set(), overrides: opts.overrides ?? {} };
  if (!isPlainObject(raw)) {
    ctx.problems.push(`the configuration document = ${show(raw)}: wrong type: expected a table of keys`);
  }
  const config = readTable(
    SPEC as unknown as AnySpec,
    DEFAULTS as unknown as Record<string, unknown>,
    isPlainObject(raw) ? raw : {},
    "",
    ctx,
  ) as unknown as Config;

  checkRelations(config, ctx);
  if (ctx.problems.length > 0) {
    const where = opts.source ? ` in ${opts.source}` : "";
    const n = ctx.problems.length;
    throw invalidArgument(
      `invalid configuration${where} (${n} problem${n === 1 ? "" : "s"}):\n${ctx.problems.map((p) => `  - ${p}`).join("\n")}`,
    );
  }

  // Derived values, filled in after the merge like Go's PrepareLogDir/ProcessConfigurations.
  if (config.log.dir === "") config.log.dir = join(config.root, "logs");
  if (config.cache_manager.cache_dir === "") config.cache_manager.cache_dir = join(config.root, "cache");
  if (config.daemon.fs_driver === "fscache" && config.daemon_mode !== "shared") {
    if (ctx.given.has("daemon_mode")) {
      ctx.warnings.push(
        `daemon_mode = ${show(config.daemon_mode)} overridden to "shared": ` +
          `daemon.fs_driver = "fscache" only supports shared mode`,
      );
    }
    config.daemon_mode = "shared";
  }
  return { config, warnings: ctx.warnings };
}

/**
 * A fresh copy of the built-in default configuration, with derived paths filled in
 * (`log.dir` = `<root>/logs`, `cache_manager.cache_dir` = `<root>/cache`). Equal to
 * `parseConfig({}).config` and to what `default.toml` parses to. Never throws.
 */
export function defaultConfig(): Config {
  return parseConfig({}).config;
}
