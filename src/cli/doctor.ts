import { defineCommand } from "citty";
import { DEFAULT_CONFIG_PATH } from "../config/index.ts";
import { DEFAULT_CONTAINERD_CONFIG, formatReport, runDoctor } from "../setup/index.ts";

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/**
 * `rafsnap doctor`: checks the node and containerd's wiring; exit code 1 when a required
 * check fails.
 */
export default defineCommand({
  meta: { name: "doctor", description: "Check that this node can run rafsnap and containerd uses it" },
  args: {
    config: { type: "string", description: `rafsnap's config.toml (default ${DEFAULT_CONFIG_PATH} if present)`, valueHint: "path" },
    root: { type: "string", description: "state directory (root)", valueHint: "dir" },
    address: { type: "string", description: "rafsnap's socket (address)", valueHint: "path" },
    "containerd-config": { type: "string", description: `containerd's config.toml (default ${DEFAULT_CONTAINERD_CONFIG})`, valueHint: "path" },
    "containerd-address": {
      type: "string",
      description: "containerd's socket (default: [grpc] address of its config, else /run/containerd/containerd.sock)",
      valueHint: "path",
    },
    json: { type: "boolean", description: "print the report as JSON" },
  },
  async run({ args }) {
    const configPath = str(args.config);
    const report = await runDoctor({
      configPath,
      explicit: configPath !== undefined,
      root: str(args.root),
      address: str(args.address),
      containerdConfig: str(args["containerd-config"]),
      containerdAddress: str(args["containerd-address"]),
    });
    process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    if (!report.ok) process.exitCode = 1;
  },
});
