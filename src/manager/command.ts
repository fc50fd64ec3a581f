import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";
import type { DaemonRow } from "../store/index.ts";

/** Where a daemon's files live under the snapshotter root (docs/compat.md §3.1). */
export interface DaemonPaths {
  apiSocket: string;
  configDir: string;
  configFile: string;
  supervisor: string;
  logDir: string;
  /** Private directory for the built-in daemon's blobfs mounts (RAFSNAP_RUN_DIR). */
  runDir: string;
}

/**
 * The nydusd config file in daemon config directory `configDir`: the daemon's own (its
 * `--config`; a shared daemon's copy of the template), or — given `instance`, a meta snapshot
 * id — that of RAFS instance `instance` on a shared daemon (its `POST /api/v1/mount` config,
 * read again when the daemon is restarted). The one place these names are made.
 */
export function daemonConfigFile(configDir: string, instance?: string): string {
  return instance === undefined ? join(configDir, "config.json") : join(configDir, instance, "config.json");
}

/** The paths of daemon `id` under `root` (and log dir `logDir`). */
export function daemonPaths(root: string, logDir: string, id: string): DaemonPaths {
  const configDir = join(root, "config", id);
  return {
    apiSocket: join(root, "socket", id, "api.sock"),
    configDir,
    configFile: daemonConfigFile(configDir),
    supervisor: join(root, "supervisor", `${id}.sock`),
    logDir: join(logDir, id),
    runDir: join(root, "run", id),
  };
}

/**
 * The nydusd command line of a fusedev daemon, in the order nydus-snapshotter emits it
 * (docs/compat.md §4.3): `fuse`, `--thread-num`, `--id`, `--config`, `--bootstrap`,
 * `--mountpoint`, `--apisock`, `--log-level`, `--log-rotation-size`, `--supervisor`,
 * `--log-file`, then always `--failover-policy`. Zero values and a null bootstrap (shared
 * daemon: no `--config` either) are left out; `--id`/`--supervisor` only with a supervisor
 * (recover policy failover); `--log-file` only when not logging to stdout; `--upgrade` (right
 * after the subcommand) only for a hot upgrade's successor, which then waits in INIT.
 */
export function nydusdArgs(d: DaemonRow, prefetchFiles?: string, upgrade = false): string[] {
  const args = ["fuse"];
  if (upgrade) args.push("--upgrade");
  if (d.threadNum > 0) args.push("--thread-num", String(d.threadNum));
  if (d.supervisorPath) args.push("--id", d.id);
  if (d.bootstrap) args.push("--config", daemonConfigFile(d.configDir), "--bootstrap", d.bootstrap);
  args.push("--mountpoint", d.mountpoint, "--apisock", d.apiSocket, "--log-level", d.logLevel);
  if (d.logRotationSize > 0) args.push("--log-rotation-size", String(d.logRotationSize));
  if (d.supervisorPath) args.push("--supervisor", d.supervisorPath);
  if (!d.logToStdout) args.push("--log-file", join(d.logDir, "nydusd.log"));
  if (prefetchFiles) args.push("--prefetch-files", prefetchFiles);
  args.push("--failover-policy", d.failoverPolicy);
  return args;
}

const XID_ALPHABET = "0123456789abcdefghijklmnopqrstuv";

/**
 * A new daemon id: 20 characters of base32hex like the `rs/xid` ids nydus-snapshotter uses
 * (time-ordered prefix, random rest), so ids sort by creation and fit in socket paths.
 */
export function newDaemonId(now = Date.now()): string {
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setUint32(0, Math.floor(now / 1000));
  crypto.getRandomValues(bytes.subarray(4));
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += XID_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += XID_ALPHABET[(value << (5 - bits)) & 31];
  return out.slice(0, 20);
}

/**
 * The API socket of a hot upgrade's successor, beside the current one (docs/compat.md §3.1):
 * `api.sock` → `api1.sock`, `apiN.sock` → `api<N+1>.sock`. InvalidArgument for a socket not
 * named that way.
 */
export function nextApiSocket(current: string): string {
  const m = /^(.*\/)?api(\d*)\.sock$/.exec(current);
  if (!m) throw invalidArgument(`API socket ${current} is not named api[N].sock`);
  return `${m[1] ?? ""}api${m[2] === "" ? 1 : Number(m[2]) + 1}.sock`;
}
