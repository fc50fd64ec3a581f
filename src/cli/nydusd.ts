import { mkdirSync, rmSync } from "node:fs";
import { defineCommand } from "citty";
import { readPrefetchListFile } from "../nydusd/index.ts";
import { invalidArgument, notImplemented } from "../errdefs/index.ts";
import { createLogger, isLogLevelName, LOG_LEVEL_NAMES } from "../log/index.ts";
import { Daemon, daemonRunDir, FAILOVER_POLICIES, type FailoverPolicy, loadDaemonConfig, predecessorCrashed, startApiServer } from "../nydusd/index.ts";
import { versionInfo } from "./_version.ts";

/**
 * `rafsnap nydusd` (and the binary invoked as `nydusd`): the built-in data plane with
 * nydusd's command line (docs/compat.md §6). Global options may come before or after the
 * subcommand (`fuse`, the default; `singleton` is refused: no fscache on-demand mode here).
 */
export default defineCommand({
  meta: { name: "nydusd", description: "Serve RAFS v6 images lazily (nydusd-compatible daemon)" },
  args: {
    subcommand: { type: "positional", required: false, description: "fuse (default) | singleton | virtiofs" },
    apisock: { type: "string", alias: ["A"], description: "HTTP API unix socket" },
    config: { type: "string", alias: ["C"], description: "nydusd JSON config (fusedev)" },
    id: { type: "string", description: "daemon id (with --supervisor)" },
    supervisor: { type: "string", description: "supervisor socket for failover (with --id)" },
    "log-level": { type: "string", alias: ["l"], default: "info", description: "trace|debug|info|warn|error" },
    "log-file": { type: "string", alias: ["L"], description: "log file (.log is added without an extension)" },
    "log-rotation-size": { type: "string", description: "rotate --log-file at this many MB (0: never); 5 rotated files are kept" },
    "rlimit-nofile": { type: "string", description: "accepted for compatibility" },
    upgrade: { type: "boolean", description: "start for a hot upgrade (stays in INIT)" },
    mountpoint: { type: "string", alias: ["M"], description: "FUSE mountpoint (fuse)" },
    bootstrap: { type: "string", alias: ["B"], description: "RAFS metadata (dedicated mode)" },
    "thread-num": { type: "string", alias: ["fuse-threads"], description: "FUSE reader threads, 1-1024 (default 2)" },
    "failover-policy": { type: "string", default: "resend", description: "after a takeover: resend|flush (the kernel resends unanswered requests) or none" },
    "prefetch-files": { type: "string", description: "file listing paths to prefetch" },
    "virtual-mountpoint": { type: "string", alias: ["m"], description: "accepted (default /)" },
    fscache: { type: "string", alias: ["F"], description: "singleton: fscache dir (unsupported)" },
    version: { type: "boolean", alias: ["V"], description: "print version lines like nydusd" },
  },
  async run({ args }) {
    const v = versionInfo();
    if (args.version) {
      process.stdout.write(`Version: \t${v.version}\nGit Commit: \t${v.revision}\nBuild Time: \t${v.buildTime}\nProfile: \trelease\nRustc: \t${v.runtime}\n`);
      return;
    }
    const sub = args.subcommand ?? "fuse";
    if (sub === "singleton") throw notImplemented("fscache is not supported: the kernel has no cachefiles on-demand mode; use the fuse subcommand");
    if (sub !== "fuse") throw invalidArgument(`subcommand ${JSON.stringify(sub)} is not supported (fuse)`);
    if (!args.mountpoint) throw invalidArgument("--mountpoint is required for fuse");
    if ((args.id === undefined) !== (args.supervisor === undefined)) throw invalidArgument("--id and --supervisor go together");
    const level = args["log-level"];
    if (!isLogLevelName(level)) throw invalidArgument(`--log-level ${JSON.stringify(level)}: one of ${LOG_LEVEL_NAMES.join(", ")}`);
    let file = args["log-file"];
    if (file && !/\.[^/]+$/.test(file)) file = `${file}.log`;
    const rotationMb = Number(args["log-rotation-size"] ?? 0);
    if (!Number.isInteger(rotationMb) || rotationMb < 0)
      throw invalidArgument(`--log-rotation-size ${JSON.stringify(args["log-rotation-size"])}: a size in MB (0 = no rotation)`);
    // nydusd keeps rotated logs uncompressed; we keep the last 5 (decision: docs/nydusd.md).
    const rotation = { maxBytes: rotationMb << 20, maxBackups: 5, maxAgeDays: 0, localTime: true, compress: false };
    // Adjustable: PUT /api/v1/daemon {"log_level"} changes it while running.
    const logger = createLogger({ level, toStdout: !file, file, rotation, adjustable: true });
    const threads = args["thread-num"] === undefined ? undefined : Number(args["thread-num"]);
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 1024)) {
      throw invalidArgument(`--thread-num ${JSON.stringify(args["thread-num"])}: a number of threads from 1 to 1024`);
    }
    const policy = args["failover-policy"];
    if (!(FAILOVER_POLICIES as readonly string[]).includes(policy))
      throw invalidArgument(`--failover-policy ${JSON.stringify(policy)}: one of ${FAILOVER_POLICIES.join(", ")}`);
    const config = args.config ? loadDaemonConfig(args.config) : undefined;
    if (args.bootstrap && !config) throw invalidArgument("--bootstrap needs --config (backend and cache)");
    const runDir = daemonRunDir(process.env.RAFSNAP_RUN_DIR ?? "/run/rafsnap", process.pid);
    mkdirSync(runDir, { recursive: true, mode: 0o700 });
    const daemon = new Daemon({
      id: args.id ?? null,
      supervisor: args.supervisor ?? null,
      mountpoint: args.mountpoint,
      runDir,
      config,
      version: v,
      logger,
      fuseThreads: threads,
      failoverPolicy: policy as FailoverPolicy,
    });
    let api: Awaited<ReturnType<typeof startApiServer>> | undefined;
    const crashed = args.apisock !== undefined && (await predecessorCrashed(args.apisock, args.mountpoint));
    try {
      if (args.upgrade || crashed) daemon.startForTakeover();
      else if (args.bootstrap && config) {
        const files = args["prefetch-files"] ? readPrefetchListFile(args["prefetch-files"], "--prefetch-files") : [];
        await daemon.startDedicated(args.bootstrap, config, files);
      } else daemon.startShared();
      if (args.apisock) {
        api = await startApiServer(args.apisock, daemon, logger);
      }
    } catch (e) {
      // Undo whatever was mounted (the blobfs too) before reporting.
      await daemon.shutdown();
      rmSync(runDir, { recursive: true, force: true });
      throw e;
    }
    logger.info(`nydusd serving ${args.bootstrap ?? "shared instances"} at ${args.mountpoint}`);
    await new Promise<void>((resolve) => {
      const stop = async (sig: string) => {
        logger.info(`received ${sig}, unmounting`);
        api?.stop();
        await daemon.shutdown();
        rmSync(runDir, { recursive: true, force: true });
        resolve();
      };
      process.once("SIGTERM", () => void stop("SIGTERM"));
      process.once("SIGINT", () => void stop("SIGINT"));
    });
    process.exit(0); // reader workers would keep the process alive
  },
});
