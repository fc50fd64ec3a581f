import { defineCommand } from "citty";
import { configToToml, DEFAULT_CONFIG_TOML, loadConfig } from "../config/index.ts";
import { loadOptionsOf, snapshotterArgs } from "./_args.ts";

/**
 * `rafsnap config`: prints the effective configuration (defaults ← file ← flags) as TOML
 * with secrets redacted; `rafsnap config --default` prints the shipped default file.
 */
export default defineCommand({
  meta: { name: "config", description: "Print the effective configuration as TOML" },
  args: {
    ...snapshotterArgs,
    default: { type: "boolean", description: "print the shipped default config.toml instead" },
  },
  async run({ args, rawArgs }) {
    if (args.default) {
      process.stdout.write(DEFAULT_CONFIG_TOML);
      return;
    }
    const { config, warnings } = await loadConfig(loadOptionsOf(args, rawArgs));
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(configToToml(config, { redact: true }));
  },
});
