import type { ArgsDef } from "citty";

/**
 * The flags of `containerd-nydus-grpc` (docs/compat.md §1.3), shared by `serve` and `config`.
 * Each overrides one config key; an empty value overrides nothing.
 */
export const snapshotterArgs = {
  config: { type: "string", description: "path of the config.toml (default: embedded defaults)", valueHint: "path" },
  root: { type: "string", description: "state directory (root)", valueHint: "dir" },
  address: { type: "string", description: "unix socket of the snapshots gRPC API (address)", valueHint: "path" },
  "log-level": { type: "string", description: "log level: trace|debug|info|warn|error (log.level)" },
  "log-to-stdout": { type: "boolean", description: "log to stdout instead of <log.dir> (log.log_to_stdout)" },
  "daemon-mode": { type: "string", description: "dedicated|multiple|shared|none (daemon_mode)" },
  "fs-driver": { type: "string", description: "fusedev|fscache|blockdev|proxy|nodev (daemon.fs_driver)" },
  nydusd: { type: "string", description: "nydusd binary (daemon.nydusd_path)", valueHint: "path" },
  "nydusd-config": {
    type: "string",
    alias: ["config-path"],
    description: "nydusd config template (daemon.nydusd_config)",
    valueHint: "path",
  },
  "nydus-image": { type: "string", description: "nydus-image binary (daemon.nydusimage_path)", valueHint: "path" },
  "nydus-overlayfs-path": { type: "string", description: "nydus-overlayfs helper (snapshot.nydus_overlayfs_path)" },
} as const satisfies ArgsDef;

type Parsed = { [K in keyof typeof snapshotterArgs]?: string | boolean | undefined };

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** The parsed flags as config-loader flags. `--log-to-stdout` applies only when given. */
export function flagsOf(args: Parsed, rawArgs: string[]) {
  const given = rawArgs.some((a) => a === "--log-to-stdout" || a.startsWith("--log-to-stdout=") || a === "-log-to-stdout");
  return {
    root: str(args.root),
    address: str(args.address),
    logLevel: str(args["log-level"]),
    logToStdout: given ? args["log-to-stdout"] === true : undefined,
    daemonMode: str(args["daemon-mode"]),
    fsDriver: str(args["fs-driver"]),
    nydusd: str(args.nydusd),
    nydusdConfig: str(args["nydusd-config"]),
    nydusImage: str(args["nydus-image"]),
    nydusOverlayfsPath: str(args["nydus-overlayfs-path"]),
  };
}

/** Loader options from the parsed flags: `--config` given means the file must exist. */
export function loadOptionsOf(args: Parsed, rawArgs: string[]) {
  const configPath = str(args.config);
  return { configPath, explicit: configPath !== undefined, flags: flagsOf(args, rawArgs) };
}
