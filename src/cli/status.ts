import { defineCommand } from "citty";
import { loadConfig } from "../config/index.ts";
import { formatStatus, readStatus } from "../service/index.ts";
import { loadOptionsOf, snapshotterArgs } from "./_args.ts";

/**
 * `rafsnap status`: the daemons, RAFS instances and their state, and what the readiness
 * check found at the last start — read from the state root (same config and flags as
 * `serve`). Exit code 1 when a daemon is not RUNNING, an instance is broken or unmounted, or
 * the last check found problems.
 */
export default defineCommand({
  meta: { name: "status", description: "Show nydus daemons, RAFS instances and the last readiness check" },
  args: {
    ...snapshotterArgs,
    json: { type: "boolean", description: "print the status as JSON" },
  },
  async run({ args, rawArgs }) {
    const { config } = await loadConfig(loadOptionsOf(args, rawArgs));
    const s = await readStatus(config);
    process.stdout.write(args.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
    const bad = s.daemons.some((d) => d.state !== "RUNNING") || s.instances.some((i) => i.status !== "ready" || !i.mounted) || s.findings.length > 0;
    if (bad) process.exitCode = 1;
  },
});
