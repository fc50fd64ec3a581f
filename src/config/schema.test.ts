import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { durationMs, isGoDuration, nanosToGoDuration, parseGoDuration } from "./duration.ts";
import { defaultConfig, parseConfig } from "./schema.ts";
import type { Config } from "./types.ts";

const ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus";

/** Pins every default (soci TestConfigDefaults). Change only with a reason. */
const EXPECTED_DEFAULTS: Config = {
  version: 1,
  root: ROOT,
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
    nydusd_path: "/usr/libexec/rafsnap/nydusd",
    nydusimage_path: "/usr/local/bin/nydus-image",
    fs_driver: "fusedev",
    recover_policy: "restart",
    threads_number: 0,
    log_rotation_size: 100,
    failover_policy: "resend",
  },
  cgroup: { enable: true, memory_limit: "" }, // Go: enable = false, no limit (docs/config.md)
  log: {
    log_to_stdout: false,
    level: "info",
    dir: `${ROOT}/logs`,
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
  cache_manager: { disable: false, gc_period: "24h", cache_dir: `${ROOT}/cache` },
  image: { public_key_file: "", validate_signature: false },
  experimental: {
    enable_stargz: false,
    enable_referrer_detect: false,
    enable_index_detect: false,
    enable_backend_source: false,
    tarfs: { enable_tarfs: false, mount_tarfs_on_host: false, tarfs_hint: false, max_concurrent_proc: 0, export_mode: "" },
  },
};

/** Runs parseConfig expecting failure; returns the error message. */
function failure(raw: unknown, opts?: Parameters<typeof parseConfig>[1]): string {
  try {
    parseConfig(raw, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(RafsnapError);
    expect((err as RafsnapError).kind).toBe(ErrorKind.InvalidArgument);
    return (err as Error).message;
  }
  throw new Error("parseConfig accepted an invalid document");
}

const tmp = mkdtempSync(join(tmpdir(), "rafsnap-config-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("defaults", () => {
  test("an empty document gives every default, with derived paths", () => {
    const { config, warnings } = parseConfig({});
    expect(config).toEqual(EXPECTED_DEFAULTS);
    expect(warnings).toEqual([]);
  });

  test("defaultConfig() returns a fresh, mutable copy each time", () => {
    const a = defaultConfig();
    a.daemon.threads_number = 9;
    a.log.level = "debug";
    expect(defaultConfig()).toEqual(EXPECTED_DEFAULTS);
  });

  test("derived paths follow root, and explicit ones are kept", () => {
    const { config } = parseConfig({ root: "/srv/rafsnap/" });
    expect(config.log.dir).toBe("/srv/rafsnap/logs");
    expect(config.cache_manager.cache_dir).toBe("/srv/rafsnap/cache");
    const explicit = parseConfig({ root: "/srv/r", log: { dir: "/var/log/r" }, cache_manager: { cache_dir: "/c" } });
    expect(explicit.config.log.dir).toBe("/var/log/r");
    expect(explicit.config.cache_manager.cache_dir).toBe("/c");
  });

  test("false in the file turns a default of true off (unlike Go's mergo merge)", () => {
    const { config } = parseConfig({ log: { log_rotation_local_time: false, log_rotation_compress: false } });
    expect(config.log.log_rotation_local_time).toBe(false);
    expect(config.log.log_rotation_compress).toBe(false);
  });

  test("0 in the file overrides a non-zero default", () => {
    const { config } = parseConfig({ daemon: { log_rotation_size: 0 }, log: { log_rotation_max_size: 0 } });
    expect(config.daemon.log_rotation_size).toBe(0);
    expect(config.log.log_rotation_max_size).toBe(0);
  });
});

describe("normalisation", () => {
  test('daemon_mode "multiple" is read as "dedicated"', () => {
    expect(parseConfig({ daemon_mode: "multiple" }).config.daemon_mode).toBe("dedicated");
    expect(parseConfig({ daemon_mode: "shared" }).config.daemon_mode).toBe("shared");
    expect(parseConfig({ daemon_mode: "none" }).config.daemon_mode).toBe("none");
  });

  test('fs_driver "fscache" forces daemon_mode "shared"', () => {
    const implicit = parseConfig({ daemon: { fs_driver: "fscache" } });
    expect(implicit.config.daemon_mode).toBe("shared");
    expect(implicit.warnings).toEqual([]);
    const explicit = parseConfig({ daemon_mode: "multiple", daemon: { fs_driver: "fscache" } });
    expect(explicit.config.daemon_mode).toBe("shared");
    expect(explicit.warnings).toHaveLength(1);
    expect(explicit.warnings[0]).toContain('daemon_mode = "dedicated" overridden to "shared"');
    expect(explicit.warnings[0]).toContain("fscache");
  });

  test('export_mode "none" is stored as ""; valid modes are kept', () => {
    expect(parseConfig({ experimental: { tarfs: { export_mode: "none" } } }).config.experimental.tarfs.export_mode).toBe("");
    const { config } = parseConfig({ experimental: { tarfs: { export_mode: "image_block_with_verity" } } });
    expect(config.experimental.tarfs.export_mode).toBe("image_block_with_verity");
  });

  test("durations are kept as written; integers are nanoseconds (go-toml v1)", () => {
    const { config } = parseConfig({
      metrics: { hung_io_interval: "1m30s", collect_interval: 90_000_000_000 },
      cache_manager: { gc_period: "1.5h" },
      remote: { auth: { credential_renewal_interval: 0 } },
    });
    expect(config.metrics.hung_io_interval).toBe("1m30s");
    expect(config.metrics.collect_interval).toBe("90s");
    expect(config.cache_manager.gc_period).toBe("1.5h");
    expect(config.remote.auth.credential_renewal_interval).toBe("0s");
  });
});

describe("unknown keys", () => {
  test("are warnings naming the full key path, at any depth", () => {
    const { config, warnings } = parseConfig({
      bogus: 1,
      daemon: { fs_driver: "fusedev", nydusd_pth: "/x" },
      remote: { auth: { password_file: "/p" }, mirrors_config: { dirs: "/m" } },
      experimental: { tarfs: { turbo: true } },
      newsection: { a: { b: 1 } },
      "odd key": 1,
    });
    expect(config.daemon.nydusd_path).toBe("/usr/libexec/rafsnap/nydusd");
    expect(warnings).toEqual([
      "unknown key bogus (ignored)",
      "unknown key newsection (ignored)",
      'unknown key "odd key" (ignored)',
      "unknown key daemon.nydusd_pth (ignored)",
      "unknown key remote.mirrors_config.dirs (ignored)",
      "unknown key remote.auth.password_file (ignored)",
      "unknown key experimental.tarfs.turbo (ignored)",
    ]);
  });

  test("prototype names are not mistaken for keys", () => {
    const { warnings } = parseConfig({ toString: 1, daemon: { constructor: 2 } });
    expect(warnings).toEqual(["unknown key toString (ignored)", "unknown key daemon.constructor (ignored)"]);
  });
});

describe("validation rules (nydus ValidateConfig and ours)", () => {
  test("version must be 1", () => {
    const msg = failure({ version: 2 });
    expect(msg).toContain("version = 2");
    expect(msg).toContain("must be 1");
    expect(parseConfig({ version: 1 }).config.version).toBe(1);
  });

  test("root must be non-empty, absolute and at most 70 bytes", () => {
    expect(failure({ root: "" })).toContain('root = "": must not be empty');
    expect(failure({ root: "var/lib/rafsnap" })).toContain('root = "var/lib/rafsnap": must be an absolute path');
    const long = `/${"r".repeat(70)}`; // 71 bytes
    const msg = failure({ root: long });
    expect(msg).toContain(`root = "${long}"`);
    expect(msg).toContain("71 bytes, at most 70 bytes allowed");
    expect(parseConfig({ root: `/${"r".repeat(69)}` }).config.root).toHaveLength(70);
    // Bytes, not characters: 35 two-byte characters plus "/" are 71 bytes.
    expect(failure({ root: `/${"é".repeat(35)}` })).toContain("71 bytes");
  });

  test("address must be absolute and fit sun_path (107 bytes)", () => {
    expect(failure({ address: "grpc.sock" })).toContain('address = "grpc.sock": must be an absolute path');
    const long = `/${"a".repeat(107)}`;
    const msg = failure({ address: long });
    expect(msg).toContain("108 bytes, at most 107 bytes allowed");
    expect(parseConfig({ address: `/${"a".repeat(106)}` }).config.address).toHaveLength(107);
  });

  test("system.address is checked only when the system controller is enabled", () => {
    expect(parseConfig({ system: { address: "" } }).config.system.address).toBe("");
    const msg = failure({ system: { enable: true, address: "sys.sock" } });
    expect(msg).toContain('system.address = "sys.sock": must be an absolute path');
    expect(msg).toContain("system.enable = true");
  });

  test("fs_driver must be a known driver", () => {
    const msg = failure({ daemon: { fs_driver: "virtiofs" } });
    expect(msg).toContain('daemon.fs_driver = "virtiofs": must be one of "fusedev", "fscache", "blockdev", "proxy", "nodev"');
    for (const d of ["fusedev", "fscache", "blockdev", "proxy", "nodev"]) {
      expect(parseConfig({ daemon: { fs_driver: d } }).config.daemon.fs_driver).toBe(d as Config["daemon"]["fs_driver"]);
    }
  });

  test("an empty string is not a valid enum value (no Go-style default fill-in)", () => {
    expect(failure({ daemon: { fs_driver: "" } })).toContain('daemon.fs_driver = "": must be one of');
  });

  test("recover_policy must be none|restart|failover", () => {
    expect(failure({ daemon: { recover_policy: "always" } })).toContain('daemon.recover_policy = "always": must be one of "none", "restart", "failover"');
  });

  test("failover_policy must be none|resend|flush", () => {
    expect(failure({ daemon: { failover_policy: "retry" } })).toContain('daemon.failover_policy = "retry": must be one of "none", "resend", "flush"');
  });

  test("threads_number must be within 0..1024", () => {
    expect(failure({ daemon: { threads_number: 1025 } })).toContain("daemon.threads_number = 1025: out of range: must be an integer from 0 to 1024");
    expect(failure({ daemon: { threads_number: -1 } })).toContain("daemon.threads_number = -1: out of range");
    expect(failure({ daemon: { threads_number: 2.5 } })).toContain("daemon.threads_number = 2.5: wrong type: expected an integer from 0 to 1024, got a float");
    expect(parseConfig({ daemon: { threads_number: 1024 } }).config.daemon.threads_number).toBe(1024);
  });

  test("log.level must be trace|debug|info|warn|error", () => {
    expect(failure({ log: { level: "verbose" } })).toContain('log.level = "verbose": must be one of "trace", "debug", "info", "warn", "error"');
  });

  test("daemon_mode must be dedicated|multiple|shared|none", () => {
    expect(failure({ daemon_mode: "single" })).toContain('daemon_mode = "single": must be one of "dedicated", "shared", "none", "multiple"');
  });

  test("both keychains cannot be enabled", () => {
    const msg = failure({ remote: { auth: { enable_cri_keychain: true, enable_kubeconfig_keychain: true } } });
    expect(msg).toContain("remote.auth.enable_cri_keychain = true");
    expect(msg).toContain("remote.auth.enable_kubeconfig_keychain = true");
    expect(msg).toContain("only one of the two keychains");
  });

  test("mirrors_config.dir must exist when set", () => {
    const missing = join(tmp, "no-such-certs.d");
    expect(failure({ remote: { mirrors_config: { dir: missing } } })).toContain(`remote.mirrors_config.dir = "${missing}": directory does not exist`);
    const file = join(tmp, "a-file");
    writeFileSync(file, "x");
    expect(failure({ remote: { mirrors_config: { dir: file } } })).toContain("directory does not exist");
    const dir = join(tmp, "certs.d");
    mkdirSync(dir);
    expect(parseConfig({ remote: { mirrors_config: { dir } } }).config.remote.mirrors_config.dir).toBe(dir);
  });

  test("validate_signature needs an existing public_key_file", () => {
    const unset = failure({ image: { validate_signature: true } });
    expect(unset).toContain('image.public_key_file = "": not set');
    expect(unset).toContain("image.validate_signature = true");
    const missing = join(tmp, "missing.pem");
    expect(failure({ image: { validate_signature: true, public_key_file: missing } })).toContain(`image.public_key_file = "${missing}": file does not exist`);
    const key = join(tmp, "key.pem");
    writeFileSync(key, "-----BEGIN PUBLIC KEY-----\n");
    // With a key, still refused: signature checks are not built, and rafsnap never fails open.
    const built = failure({ image: { validate_signature: true, public_key_file: key } });
    expect(built).toContain("image.validate_signature = true");
    expect(built).toContain("refuses to start");
    expect(built).not.toContain("image.public_key_file");
    // Without validate_signature the file is not looked at.
    expect(parseConfig({ image: { public_key_file: missing } }).config.image.public_key_file).toBe(missing);
  });

  test("export_mode must be an allowed mode or empty", () => {
    expect(failure({ experimental: { tarfs: { export_mode: "block" } } })).toContain(
      'experimental.tarfs.export_mode = "block": must be one of "", "layer_verity_only"',
    );
  });

  test("uid and gid must be non-negative integers", () => {
    expect(failure({ uid: -1 })).toContain("uid = -1: out of range: must be an integer from 0 to 4294967294");
    expect(failure({ gid: "0" })).toContain('gid = "0": wrong type: expected an integer from 0 to 4294967294, got a string');
    expect(failure({ system: { uid: 1.5 } })).toContain("system.uid = 1.5: wrong type");
    expect(parseConfig({ uid: 1000, gid: 1000 }).config.uid).toBe(1000);
  });

  test("durations must be non-negative Go durations", () => {
    expect(failure({ metrics: { hung_io_interval: "10 seconds" } })).toContain('metrics.hung_io_interval = "10 seconds": not a valid duration');
    expect(failure({ cache_manager: { gc_period: "-1h" } })).toContain('cache_manager.gc_period = "-1h": must not be negative');
    expect(failure({ metrics: { collect_interval: "" } })).toContain('metrics.collect_interval = "": not a valid duration');
    expect(failure({ metrics: { collect_interval: true } })).toContain("metrics.collect_interval = true: wrong type: expected a Go duration string");
  });

  test("cgroup.memory_limit accepts Go's forms only", () => {
    for (const ok of ["", "209715200", "200MiB", "200Mi", "1.5GiB", "10%", "512B"]) {
      expect(parseConfig({ cgroup: { memory_limit: ok } }).config.cgroup.memory_limit).toBe(ok);
    }
    expect(failure({ cgroup: { memory_limit: "200MB" } })).toContain('cgroup.memory_limit = "200MB": must be ""');
  });
});

describe("wrong types", () => {
  test("a string where a boolean belongs", () => {
    expect(failure({ cleanup_on_close: "false" })).toContain('cleanup_on_close = "false": wrong type: expected a boolean (true or false), got a string');
  });

  test("a number where a string belongs", () => {
    expect(failure({ daemon: { nydusd_path: 1 } })).toContain("daemon.nydusd_path = 1: wrong type: expected a string, got an integer");
  });

  test("a scalar where a table belongs, and a table where a scalar belongs", () => {
    expect(failure({ daemon: "fusedev" })).toContain('daemon = "fusedev": wrong type: expected a table');
    expect(failure({ root: { path: "/x" } })).toContain("root = (a table): wrong type");
    expect(failure({ snapshot: { sync_remove: [true] } })).toContain("snapshot.sync_remove = [true]: wrong type");
  });

  test("the document itself must be a table", () => {
    expect(failure("version = 1")).toContain("expected a table of keys");
    expect(failure(null)).toContain("expected a table of keys");
  });
});

describe("error reporting", () => {
  test("all problems are reported together, one per line", () => {
    const msg = failure(
      { version: 3, root: "rel", daemon: { fs_driver: "x", threads_number: 5000 }, log: { level: 1 } },
      { source: "/etc/rafsnap/config.toml" },
    );
    const lines = msg.split("\n");
    expect(lines[0]).toBe("invalid configuration in /etc/rafsnap/config.toml (5 problems):");
    expect(lines.slice(1)).toHaveLength(5);
    expect(lines[1]).toStartWith("  - version = 3");
    expect(lines[2]).toStartWith('  - root = "rel"');
    expect(lines[3]).toStartWith('  - daemon.fs_driver = "x"');
    expect(lines[4]).toStartWith("  - daemon.threads_number = 5000");
    expect(lines[5]).toStartWith("  - log.level = 1");
  });

  test("keys set by flags name the flag", () => {
    const msg = failure({ daemon: { fs_driver: "bad" } }, { overrides: { "daemon.fs_driver": "--fs-driver" } });
    expect(msg).toContain('daemon.fs_driver (from --fs-driver) = "bad"');
  });

  test("long values are shortened", () => {
    const msg = failure({ log: { level: "x".repeat(500) } });
    expect(msg.length).toBeLessThan(400);
  });
});

describe("Go durations", () => {
  test("parseGoDuration follows time.ParseDuration", () => {
    expect(parseGoDuration("0")).toBe(0);
    expect(parseGoDuration("10s")).toBe(10e9);
    expect(parseGoDuration("1m30s")).toBe(90e9);
    expect(parseGoDuration("1h2m3s4ms5us6ns")).toBe(3723004005006);
    expect(parseGoDuration("1.5h")).toBe(5400e9);
    expect(parseGoDuration(".5s")).toBe(5e8);
    expect(parseGoDuration("1.s")).toBe(1e9);
    expect(parseGoDuration("3µs")).toBe(3000);
    expect(parseGoDuration("-2m")).toBe(-120e9);
    for (const bad of ["", "1", "s", ".s", "1d", "1 s", "1sec", "1h-1m", "+", "10S"]) {
      expect(parseGoDuration(bad)).toBeUndefined();
    }
    expect(parseGoDuration("3000000h")).toBeUndefined(); // beyond int64 nanoseconds
    expect(isGoDuration("24h")).toBe(true);
  });

  test("durationMs converts or throws InvalidArgument", () => {
    expect(durationMs("1m")).toBe(60_000);
    expect(durationMs("1500us")).toBe(1.5);
    expect(() => durationMs("soon")).toThrow(/"soon" is not a Go duration/);
  });

  test("nanosToGoDuration picks the largest exact unit", () => {
    expect(nanosToGoDuration(0)).toBe("0s");
    expect(nanosToGoDuration(86_400e9)).toBe("24h");
    expect(nanosToGoDuration(90e9)).toBe("90s");
    expect(nanosToGoDuration(1500)).toBe("1500ns");
    expect(nanosToGoDuration(2e6)).toBe("2ms");
  });
});
