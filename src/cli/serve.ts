import { defineCommand } from "citty";
import { loadConfig, unbuiltFeatureWarnings } from "../config/index.ts";
import { createLogger } from "../log/index.ts";
import { refuseLiveAddress, runUntilSignal } from "../service/index.ts";
import { loadOptionsOf, snapshotterArgs } from "./_args.ts";
import { goStyleVersion } from "./_version.ts";

/**
 * `rafsnap serve` (and the binary invoked as `containerd-nydus-grpc`): the snapshotter.
 * Loads the config (defaults ← file ← flags), then serves until SIGINT/SIGTERM.
 */
export default defineCommand({
  meta: { name: "serve", description: "Run the snapshotter (containerd proxy plugin)" },
  args: {
    ...snapshotterArgs,
    version: { type: "boolean", description: "print version information (containerd-nydus-grpc style) and exit" },
  },
  async run({ args, rawArgs }) {
    if (args.version) {
      process.stdout.write(goStyleVersion());
      return;
    }
    const { config, warnings } = await loadConfig(loadOptionsOf(args, rawArgs));
    await refuseLiveAddress(config); // before the logger creates <root>/logs
    const l = config.log;
    const logger = createLogger({
      level: l.level,
      toStdout: l.log_to_stdout,
      dir: l.dir,
      rotation: {
        maxBytes: l.log_rotation_max_size * 1024 * 1024,
        maxBackups: l.log_rotation_max_backups,
        maxAgeDays: l.log_rotation_max_age,
        localTime: l.log_rotation_local_time,
        compress: l.log_rotation_compress,
      },
    });
    for (const w of [...warnings, ...unbuiltFeatureWarnings(config)]) logger.warn(w);
    await runUntilSignal(config, logger);
    // Daemons are detached and unref'd, but a recovery or API call in flight at shutdown may
    // still hold the event loop: the service has stopped, so the process ends here.
    process.exit(0);
  },
});
