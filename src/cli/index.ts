import { defineCommand, runCommand, runMain } from "citty";
import { kindOf } from "../errdefs/index.ts";
import { versionInfo } from "./_version.ts";

/** The `rafsnap` command with its subcommands, loaded lazily. */
export const main = defineCommand({
  meta: { name: "rafsnap", version: versionInfo().version, description: "containerd remote snapshotter for nydus and OCI images" },
  subCommands: {
    serve: () => import("./serve.ts").then((m) => m.default),
    config: () => import("./config.ts").then((m) => m.default),
    version: () => import("./version.ts").then((m) => m.default),
    setup: () => import("./setup.ts").then((m) => m.default),
    doctor: () => import("./doctor.ts").then((m) => m.default),
    inspect: () => import("./inspect.ts").then((m) => m.default),
    check: () => import("./check.ts").then((m) => m.default),
  },
});

/**
 * Exit codes: 0 ok, 1 runtime failure, 2 bad input (InvalidArgument such as a bad config, or
 * a usage error citty reports: unknown command, missing argument).
 */
function exitCodeOf(err: unknown): number {
  if (kindOf(err) === "invalid-argument") return 2;
  return (err as { name?: string }).name === "CLIError" ? 2 : 1;
}

/**
 * Runs `rafsnap` with `argv` (arguments after the program name). When `asSnapshotter` is
 * set (invoked as containerd-nydus-grpc) the arguments go straight to `serve`. Errors are
 * printed as one line on stderr and turned into the exit code.
 */
export async function run(argv: string[], asSnapshotter: boolean): Promise<void> {
  const rawArgs = asSnapshotter ? ["serve", ...argv] : argv;
  try {
    const wantsHelp = rawArgs.includes("--help") || rawArgs.includes("-h");
    if (rawArgs.length === 0 || wantsHelp || (rawArgs[0] === "--version" && !asSnapshotter)) {
      // citty's runMain prints usage (of the subcommand too) and the version.
      await runMain(main, { rawArgs });
      return;
    }
    await runCommand(main, { rawArgs });
  } catch (e) {
    process.stderr.write(`rafsnap: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = exitCodeOf(e);
  }
}
