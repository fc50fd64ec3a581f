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
    nydusd: () => import("./nydusd.ts").then((m) => m.default),
    convert: () => import("./convert.ts").then((m) => m.default),
    status: () => import("./status.ts").then((m) => m.default),
    "prefetch-list": () => import("./prefetch-list.ts").then((m) => m.default),
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
 * Runs `rafsnap` with `argv` (arguments after the program name). Invoked through a link
 * named containerd-nydus-grpc the arguments go to `serve`; named nydusd, to `nydusd`. Errors are
 * printed as one line on stderr and turned into the exit code.
 */
export async function run(argv: string[], invokedAs: "rafsnap" | "containerd-nydus-grpc" | "nydusd"): Promise<void> {
  const asSnapshotter = invokedAs === "containerd-nydus-grpc";
  const rawArgs = asSnapshotter ? ["serve", ...argv] : invokedAs === "nydusd" ? ["nydusd", ...argv] : argv;
  try {
    const wantsHelp = rawArgs.includes("--help") || rawArgs.includes("-h");
    if (rawArgs.length === 0 || wantsHelp || (rawArgs[0] === "--version" && invokedAs === "rafsnap")) {
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
