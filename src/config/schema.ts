/**
 * The snapshotter configuration: every key of nydus-snapshotter's `config.toml`, its default
 * and its validation, in this one file (one file per concern, as soci's `config/`).
 *
 * Key names are the TOML names, snake_case, so a Go config file, our `Config` object and the
 * docs all use the same words. Facts: docs/compat.md §1.
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
import {
  FS_DRIVERS,
  DAEMON_MODES,
  RECOVER_POLICIES,
  FAILOVER_POLICIES,
  LOG_LEVELS,
  EXPORT_MODES,
  MAX_ROOT_BYTES,
  MAX_SOCKET_PATH_BYTES,
  type Config,
  type DeepReadonly,
} from "./types.ts";

function deepFreeze<T>(o: T): DeepReadonly<T> {
  for (const v of Object.values(o as object)) if (typeof v === "object" && v !== null) deepFreeze(v);
  return Object.freeze(o) as DeepReadonly<T>;
}

/**
 * Every default, in one place: the "code default" column of docs/compat.md §1.2 with rafsnap's
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
  cgroup: { enable: true, memory_limit: "" },
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
    problem(ctx, "remote.mirrors_config.dir", mirrors, 'directory does not exist (set "" to disable mirrors)');
  }
  if (c.image.validate_signature && (c.image.public_key_file === "" || !exists(c.image.public_key_file))) {
    const why = c.image.public_key_file === "" ? "not set" : "file does not exist";
    const reason = `${why}; an existing public key file is required when image.validate_signature = true`;
    problem(ctx, "image.public_key_file", c.image.public_key_file, reason);
  }
  if (c.image.validate_signature) {
    // Never fail open: an operator who asks for signature checks gets them or no snapshotter.
    problem(
      ctx,
      "image.validate_signature",
      true,
      "verifying bootstrap signatures is not built; rafsnap refuses to start rather than serve images unverified (set it to false)",
    );
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
    throw invalidArgument(`invalid configuration${where} (${n} problem${n === 1 ? "" : "s"}):\n${ctx.problems.map((p) => `  - ${p}`).join("\n")}`);
  }

  // Derived values, filled in after the merge like Go's PrepareLogDir/ProcessConfigurations.
  if (config.log.dir === "") config.log.dir = join(config.root, "logs");
  if (config.cache_manager.cache_dir === "") config.cache_manager.cache_dir = join(config.root, "cache");
  if (config.daemon.fs_driver === "fscache" && config.daemon_mode !== "shared") {
    if (ctx.given.has("daemon_mode")) {
      ctx.warnings.push(`daemon_mode = ${show(config.daemon_mode)} overridden to "shared": daemon.fs_driver = "fscache" only supports shared mode`);
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
