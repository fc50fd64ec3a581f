import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { DEFAULT_CONFIG_TOML, applyFlags, decodeToml, loadConfig } from "./load.ts";
import { defaultConfig, parseConfig } from "./schema.ts";

/**
 * nydus-snapshotter's shipped example, misc/snapshotter/config.toml at a7a1f07 (the "misc
 * example" column of docs/compat.md §1.2), verbatim.
 */
const GO_MISC_CONFIG = `version = 1
# Snapshotter's own home directory where it stores and creates necessary resources
root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
# The snapshotter's GRPC server socket, containerd will connect to plugin on this socket
address = "/run/containerd-nydus/containerd-nydus-grpc.sock"
# The nydus daemon mode can be one of the following options: multiple, dedicated, shared, or none.
# If \`daemon_mode\` option is not specified, the default value is multiple.
daemon_mode = "dedicated"
# Whether snapshotter should try to clean up resources when it is closed
cleanup_on_close = false

[system]
# Snapshotter's debug and trace HTTP server interface
enable = true
# Unix domain socket path where system controller is listening on
address = "/run/containerd-nydus/system.sock"

[system.debug]
# Snapshotter can profile the CPU utilization of each nydusd daemon when it is being started.
# This option specifies the profile duration when nydusd is downloading and uncomproessing data.
daemon_cpu_profile_duration_secs = 5
# Enable by assigning an address, empty indicates pprof server is disabled
pprof_address = ""

[daemon]
# Specify a configuration file for nydusd
nydusd_config = "/etc/nydus/nydusd-config.fusedev.json"
nydusd_path = "/usr/local/bin/nydusd"
nydusimage_path = "/usr/local/bin/nydus-image"
# The fs driver can be one of the following options: fusedev, fscache, blockdev, proxy, or nodev.
# If \`fs_driver\` option is not specified, the default value is fusedev.
fs_driver = "fusedev"
# How to process when daemon dies: "none", "restart" or "failover"
recover_policy = "failover"
# Nydusd worker thread number to handle FUSE or fscache requests, [0-1024].
# Setting to 0 will use the default configuration of nydusd.
threads_number = 4
# Log rotation size for nydusd, in unit MB(megabytes). (default 100MB)
log_rotation_size = 100
# Nydusd failover policy, can be "none", "resend" or "flush"
failover_policy = "resend"

[cgroup]
# Whether to use separate cgroup for nydusd.
enable = true
# The memory limit for nydusd cgroup, which contains all nydusd processes.
# Percentage is supported as well, please ensure it is end with "%".
# The default unit is bytes. Acceptable values include "209715200", "200MiB", "200Mi" and "10%".
memory_limit = ""

[log]
# Print logs to stdout rather than logging files
log_to_stdout = false
# Snapshotter's log level
level = "info"
log_rotation_compress = true
log_rotation_local_time = true
# Max number of days to retain logs
log_rotation_max_age = 7
log_rotation_max_backups = 5
# In unit MB(megabytes)
log_rotation_max_size = 100

[metrics]
# Enable by assigning an address, empty indicates metrics server is disabled
address = ":9110"
# The maximum duration an I/O operation can be pending before it's considered hung.
hung_io_interval = "10s"
# The interval at which metrics are collected and updated.
collect_interval = "1m"

[remote]
convert_vpc_registry = false

[remote.mirrors_config]
# Snapshotter will rewrite nydusd's backend host to the first reachable mirror
# loaded from this directory before each mount. Mirror selection is done by the
# snapshotter (ping_url health check) and falls back to the origin registry host
# when no mirror is available. Set to "" or an empty directory to disable it.
#dir = "/etc/nydus/certs.d"

[remote.auth]
# Fetch the private registry auth by listening to K8s API server
enable_kubeconfig_keychain = false
# synchronize \`kubernetes.io/dockerconfigjson\` secret from kubernetes API server with specified kubeconfig (default \`$KUBECONFIG\` or \`~/.kube/config\`)
kubeconfig_path = ""
# Fetch the private registry auth as CRI image service proxy
enable_cri_keychain = false
# the target image service when using image proxy
#image_service_address = "/run/containerd/containerd.sock"
# Periodically renew cached credentials from renewable providers.
# Set to a positive duration (e.g., "10m", "1h") to enable. 0 disables.
credential_renewal_interval = "0s"

[snapshot]
# Let containerd use nydus-overlayfs mount helper
enable_nydus_overlayfs = false
# Path to the nydus-overlayfs binary or name of the binary in $PATH
nydus_overlayfs_path = "nydus-overlayfs"
# Insert Kata Virtual Volume option to \`Mount.Options\`
enable_kata_volume = false
# Whether to remove resources when a snapshot is removed
sync_remove = false
# Globally enable the "volatile" overlayfs mount option on all writable snapshots.
# This skips sync on the upper layer, improving write performance for ephemeral
# container filesystems. Safe for most workloads where the writable layer does not
# need to survive a crash.
enable_overlayfs_volatile = false

[cache_manager]
# Disable or enable recyclebin
disable = false
# How long to keep deleted files in recyclebin
gc_period = "24h"
# Directory to host cached files
cache_dir = ""

[image]
public_key_file = ""
validate_signature = false

# The configuraions for features that are not production ready
[experimental]
# Whether to enable stargz support
enable_stargz = false
# Whether to enable referrers support
# The option enables trying to fetch the Nydus image associated with the OCI image and run it.
# Also see https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers
enable_referrer_detect = false
# Whether to enable index detection support
# The option enables trying to fetch the Nydus image present in the same OCI index as the original OCI image and run it.
# Also see https://github.com/containerd/nydus-snapshotter/blob/main/docs/index-detection.md
enable_index_detect = false
# Whether to enable authentication support
# The option enables nydus snapshot to provide backend information to nydusd.
enable_backend_source = false
[experimental.tarfs]
# Whether to enable nydus tarfs mode. Tarfs is supported by:
# - The EROFS filesystem driver since Linux 6.4
# - Nydus Image Service release v2.3
enable_tarfs = false
# Mount rafs on host by loopdev and EROFS
mount_tarfs_on_host = false
# Only enable nydus tarfs mode for images with \`tarfs hint\` label when true
tarfs_hint = false
# Maximum of concurrence to converting OCIv1 images to tarfs, 0 means default
max_concurrent_proc = 0
# Mode to export tarfs images:
# - "none" or "": do not export tarfs
# - "layer_verity_only": only generate disk verity information for a layer blob
# - "image_verity_only": only generate disk verity information for all blobs of an image
# - "layer_block": generate a raw block disk image with tarfs for a layer
# - "image_block": generate a raw block disk image with tarfs for an image
# - "layer_block_with_verity": generate a raw block disk image with tarfs for a layer with dm-verity info
# - "image_block_with_verity": generate a raw block disk image with tarfs for an image with dm-verity info
export_mode = ""
`;

/** The keys of nydus-snapshotter's misc/snapshotter/config-blockdev.toml preset. */
const GO_BLOCKDEV_CONFIG = `version = 1
root = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus"
address = "/run/containerd-nydus/containerd-nydus-grpc.sock"
daemon_mode = "none"
[daemon]
fs_driver = "blockdev"
nydusimage_path = "/usr/local/bin/nydus-image"
[remote]
skip_ssl_verify = true
[snapshot]
enable_kata_volume = true
[experimental.tarfs]
enable_tarfs = true
mount_tarfs_on_host = false
export_mode = "image_block_with_verity"
`;

const tmp = mkdtempSync(join(tmpdir(), "rafsnap-load-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

async function rejection(p: Promise<unknown>): Promise<RafsnapError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(RafsnapError);
    return err as RafsnapError;
  }
  throw new Error("expected a rejection");
}

describe("default.toml", () => {
  test("parses to exactly the built-in defaults, with no warnings", () => {
    const { config, warnings } = parseConfig(Bun.TOML.parse(DEFAULT_CONFIG_TOML));
    expect(config).toEqual(defaultConfig());
    expect(warnings).toEqual([]);
  });

  test("lists every key explicitly (deleting none changes nothing, adding none is needed)", () => {
    const doc = Bun.TOML.parse(DEFAULT_CONFIG_TOML) as Record<string, unknown>;
    const keys = (o: Record<string, unknown>, p = ""): string[] =>
      Object.entries(o).flatMap(([k, v]) => (typeof v === "object" && v !== null ? keys(v as Record<string, unknown>, `${p}${k}.`) : [`${p}${k}`]));
    expect(keys(doc).sort()).toEqual(keys(defaultConfig() as unknown as Record<string, unknown>).sort());
  });
});

describe("loadConfig", () => {
  test("without a config path: built-in defaults", async () => {
    const r = await loadConfig({ explicit: false, flags: {} });
    expect(r.config).toEqual(defaultConfig());
    expect(r.source).toBeNull();
    expect(r.warnings).toEqual([]);
  });

  test("an explicit path that does not exist is an error naming the path", async () => {
    const path = join(tmp, "nope.toml");
    const err = await rejection(loadConfig({ configPath: path, explicit: true, flags: {} }));
    expect(err.kind).toBe(ErrorKind.NotFound);
    expect(err.message).toContain(path);
  });

  test("a missing file at a non-explicit (default) path falls back to the defaults", async () => {
    const r = await loadConfig({ configPath: join(tmp, "absent.toml"), explicit: false, flags: { logLevel: "debug" } });
    expect(r.source).toBeNull();
    expect(r.config.log.level).toBe("debug");
  });

  test("explicit without a path is an InvalidArgument", async () => {
    const err = await rejection(loadConfig({ configPath: "", explicit: true, flags: {} }));
    expect(err.kind).toBe(ErrorKind.InvalidArgument);
  });

  test("a directory instead of a file cannot be read", async () => {
    const err = await rejection(loadConfig({ configPath: tmp, explicit: true, flags: {} }));
    expect(err.kind).toBe(ErrorKind.InvalidArgument);
    expect(err.message).toContain(`cannot read config file ${tmp}`);
  });

  test("a TOML syntax error names the file and carries Bun's message", async () => {
    const path = file("broken.toml", "version = 1\n[daemon]\nfs_driver = \n");
    const err = await rejection(loadConfig({ configPath: path, explicit: true, flags: {} }));
    expect(err.kind).toBe(ErrorKind.InvalidArgument);
    expect(err.message).toContain(path);
    expect(err.message).toContain("TOML Parse error");
    expect(err.cause).toBeInstanceOf(Error);
  });

  test("validation errors name the file", async () => {
    const path = file("bad.toml", 'version = 2\n[daemon]\nrecover_policy = "sometimes"\n');
    const err = await rejection(loadConfig({ configPath: path, explicit: true, flags: {} }));
    expect(err.kind).toBe(ErrorKind.InvalidArgument);
    expect(err.message).toContain(`invalid configuration in ${path} (2 problems)`);
    expect(err.message).toContain('daemon.recover_policy = "sometimes"');
  });

  test("unknown keys in the file come back as warnings", async () => {
    const path = file("extra.toml", 'version = 1\nshared_daemon = true\n[daemon]\nnydusd_path = "/x"\nbackend = "oss"\n');
    const r = await loadConfig({ configPath: path, explicit: true, flags: {} });
    expect(r.source).toBe(path);
    expect(r.config.daemon.nydusd_path).toBe("/x");
    expect(r.warnings).toEqual(["unknown key shared_daemon (ignored)", "unknown key daemon.backend (ignored)"]);
  });

  test("nydus-snapshotter's shipped example config loads", async () => {
    const path = file("misc.toml", GO_MISC_CONFIG);
    const { config, warnings } = await loadConfig({ configPath: path, explicit: true, flags: {} });
    expect(warnings).toEqual([]);
    expect(config.root).toBe("/var/lib/containerd/io.containerd.snapshotter.v1.nydus");
    expect(config.daemon_mode).toBe("dedicated");
    expect(config.system.enable).toBe(true);
    expect(config.system.debug.daemon_cpu_profile_duration_secs).toBe(5);
    expect(config.daemon.nydusd_config).toBe("/etc/nydus/nydusd-config.fusedev.json");
    expect(config.daemon.nydusd_path).toBe("/usr/local/bin/nydusd");
    expect(config.daemon.recover_policy).toBe("failover");
    expect(config.daemon.threads_number).toBe(4);
    expect(config.cgroup.enable).toBe(true);
    expect(config.log.log_rotation_max_age).toBe(7);
    expect(config.log.log_rotation_max_size).toBe(100);
    expect(config.log.dir).toBe("/var/lib/containerd/io.containerd.snapshotter.v1.nydus/logs");
    expect(config.metrics.address).toBe(":9110");
    expect(config.remote.mirrors_config.dir).toBe("");
    expect(config.remote.auth.credential_renewal_interval).toBe("0s");
    expect(config.snapshot.nydus_overlayfs_path).toBe("nydus-overlayfs");
    expect(config.cache_manager.cache_dir).toBe("/var/lib/containerd/io.containerd.snapshotter.v1.nydus/cache");
    // Keys the example leaves out keep their defaults.
    expect(config.uid).toBe(0);
    expect(config.remote.skip_ssl_verify).toBe(false);
  });

  test("nydus-snapshotter's blockdev preset loads", async () => {
    const path = file("blockdev.toml", GO_BLOCKDEV_CONFIG);
    const { config, warnings } = await loadConfig({ configPath: path, explicit: true, flags: {} });
    expect(warnings).toEqual([]);
    expect(config.daemon_mode).toBe("none");
    expect(config.daemon.fs_driver).toBe("blockdev");
    expect(config.remote.skip_ssl_verify).toBe(true);
    expect(config.experimental.tarfs.export_mode).toBe("image_block_with_verity");
  });
});

describe("flags", () => {
  const path = file(
    "flags.toml",
    [
      "version = 1",
      'root = "/srv/from-file"',
      'daemon_mode = "shared"',
      "[daemon]",
      'fs_driver = "fusedev"',
      'nydusd_path = "/file/nydusd"',
      "[log]",
      'level = "warn"',
      "log_to_stdout = true",
    ].join("\n"),
  );

  test("every flag overrides its key", async () => {
    const { config } = await loadConfig({
      configPath: path,
      explicit: true,
      flags: {
        root: "/srv/flag",
        address: "/run/flag.sock",
        nydusImage: "/flag/nydus-image",
        nydusd: "/flag/nydusd",
        nydusdConfig: "/flag/nydusd.json",
        nydusOverlayfsPath: "/flag/nydus-overlayfs",
        daemonMode: "multiple",
        fsDriver: "blockdev",
        logLevel: "trace",
        logToStdout: false,
      },
    });
    expect(config.root).toBe("/srv/flag");
    expect(config.address).toBe("/run/flag.sock");
    expect(config.daemon.nydusimage_path).toBe("/flag/nydus-image");
    expect(config.daemon.nydusd_path).toBe("/flag/nydusd");
    expect(config.daemon.nydusd_config).toBe("/flag/nydusd.json");
    expect(config.snapshot.nydus_overlayfs_path).toBe("/flag/nydus-overlayfs");
    expect(config.daemon_mode).toBe("dedicated");
    expect(config.daemon.fs_driver).toBe("blockdev");
    expect(config.log.level).toBe("trace");
    expect(config.log.log_to_stdout).toBe(false);
    // Derived paths follow the flag's root.
    expect(config.log.dir).toBe("/srv/flag/logs");
  });

  test("empty or absent flags do not override", async () => {
    const { config } = await loadConfig({
      configPath: path,
      explicit: true,
      flags: { root: "", fsDriver: "", logLevel: undefined, daemonMode: "" },
    });
    expect(config.root).toBe("/srv/from-file");
    expect(config.daemon.fs_driver).toBe("fusedev");
    expect(config.log.level).toBe("warn");
    expect(config.log.log_to_stdout).toBe(true);
    expect(config.daemon_mode).toBe("shared");
  });

  test("--fs-driver fscache forces shared mode", async () => {
    const { config } = await loadConfig({ explicit: false, flags: { fsDriver: "fscache" } });
    expect(config.daemon_mode).toBe("shared");
  });

  test("an invalid flag value names the flag", async () => {
    const err = await rejection(loadConfig({ configPath: path, explicit: true, flags: { logLevel: "loud", root: "rel" } }));
    expect(err.message).toContain('log.level (from --log-level) = "loud": must be one of');
    expect(err.message).toContain('root (from --root) = "rel": must be an absolute path');
  });

  test("applyFlags copies instead of mutating the document", () => {
    const raw = { daemon: { fs_driver: "fusedev", threads_number: 2 } };
    const { raw: out, overrides } = applyFlags(raw, { fsDriver: "proxy", logToStdout: true });
    expect(raw.daemon.fs_driver).toBe("fusedev");
    expect(out).toEqual({ daemon: { fs_driver: "proxy", threads_number: 2 }, log: { log_to_stdout: true } });
    expect(overrides).toEqual({ "daemon.fs_driver": "--fs-driver", "log.log_to_stdout": "--log-to-stdout" });
  });

  test("a flag aimed into a section that is not a table leaves the type error to parseConfig", () => {
    const { raw, overrides } = applyFlags({ daemon: 1 }, { nydusd: "/x" });
    expect(raw).toEqual({ daemon: 1 });
    expect(overrides).toEqual({});
    expect(() => parseConfig(raw)).toThrow("daemon = 1: wrong type: expected a table");
  });
});

describe("decodeToml", () => {
  test("returns the parsed document", () => {
    expect(decodeToml('version = 1\n[daemon]\nfs_driver = "fscache"', "x.toml")).toEqual({
      version: 1,
      daemon: { fs_driver: "fscache" },
    });
  });

  test("a syntax error is an InvalidArgument naming the source", () => {
    expect(() => decodeToml("[a]\nx = 1\n[a]\nx = 2", "dup.toml")).toThrow(/config file dup\.toml is not valid TOML: .*table/);
  });
});
