import { defineCommand } from "citty";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/index.ts";
import { containerdMajorVersion, DEFAULT_CONTAINERD_CONFIG, setupContainerd } from "../setup/index.ts";

const containerd = defineCommand({
  meta: { name: "containerd", description: "Wire containerd's config.toml to rafsnap (proxy plugin; --cri for Kubernetes)" },
  args: {
    config: { type: "string", description: `containerd's config.toml (default ${DEFAULT_CONTAINERD_CONFIG}; created when missing)`, valueHint: "path" },
    address: { type: "string", description: "rafsnap's socket (default: address from rafsnap's config)", valueHint: "path" },
    cri: {
      type: "boolean",
      description: 'also set the CRI settings: snapshotter = "nydus", disable_snapshot_annotations = false, discard_unpacked_layers = false',
    },
    "dry-run": { type: "boolean", description: "print the diff, write nothing" },
    "rafsnap-config": {
      type: "string",
      description: `rafsnap's config.toml, for the default address (default ${DEFAULT_CONFIG_PATH} if present)`,
      valueHint: "path",
    },
  },
  async run({ args }) {
    const rafsnapConfig = typeof args["rafsnap-config"] === "string" && args["rafsnap-config"] !== "" ? args["rafsnap-config"] : undefined;
    const { config } = await loadConfig({
      configPath: rafsnapConfig ?? DEFAULT_CONFIG_PATH,
      explicit: rafsnapConfig !== undefined,
      flags: { address: args.address || undefined },
    });
    const dryRun = args["dry-run"] === true;
    const r = await setupContainerd({
      configPath: args.config || DEFAULT_CONTAINERD_CONFIG,
      address: config.address,
      cri: args.cri === true,
      dryRun,
      containerdMajor: containerdMajorVersion(),
    });
    for (const n of r.notes) process.stderr.write(`note: ${n}\n`);
    if (!r.changed) {
      process.stderr.write(`${r.configPath} already wires rafsnap (${config.address}${args.cri ? ", CRI" : ""}); nothing changed\n`);
      return;
    }
    process.stdout.write(r.diff);
    if (dryRun) process.stderr.write(`dry run: ${r.configPath} not written\n`);
    else {
      const how = r.created ? "created" : `updated (backup: ${r.backup})`;
      process.stderr.write(`${r.configPath} ${how}; restart containerd to apply: systemctl restart containerd\n`);
    }
  },
});

/** `rafsnap setup`: node setup helpers; today `rafsnap setup containerd`. */
export default defineCommand({
  meta: { name: "setup", description: "Configure other components of the node for rafsnap" },
  subCommands: { containerd },
});
