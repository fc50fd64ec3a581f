// config.toml of the tests' private containerd (test/harness/containerd.ts), for containerd 1.x
// (config version 2) and 2.x (config version 3). Both use the same layout; what differs:
//
// - 2.x splits CRI into `io.containerd.cri.v1.images` (snapshotter, sandbox image as
//   `pinned_images.sandbox`), `io.containerd.cri.v1.runtime` (runtimes, OOM and netns settings)
//   and `io.containerd.grpc.v1.cri` (the streaming server).
// - 2.x pulls (`ctr images pull`, CRI) through the transfer service. It unpacks only into the
//   (platform, snapshotter) pairs of `[[plugins."io.containerd.transfer.v1.local".unpack_config]]`
//   — a list that replaces the built-in overlayfs one once set, so overlayfs is listed too —
//   and gives a snapshotter the remote-snapshot labels (CRI's `cri.image-ref`, `cri.layer-digest`,
//   …) only when its proxy plugin exports `enable_remote_snapshot_annotations = "true"`. CRI's
//   own `disable_snapshot_annotations = false` would instead make 2.1 fall back to the old
//   client-side pull, which is not what a 2.x node does by default.
import { join } from "node:path";
import { hostPlatform } from "../../src/setup/containerd-config.ts";
import type { CriConfig } from "./containerd.ts";

/** Inputs of {@link containerdConfig}. */
export interface ContainerdConfigInput {
  /** 2 for containerd 1.x, 3 for 2.x. */
  configVersion: 2 | 3;
  root: string;
  state: string;
  address: string;
  optDir: string;
  proxySnapshotters?: Record<string, string>;
  cri?: CriConfig;
  extraConfig?: string;
  gcMutationThreshold?: number;
}

/** TOML basic string (JSON string escapes are valid TOML for our paths). */
const q = (s: string): string => JSON.stringify(s);

/** Snapshotters that cannot work here (or probe the kernel) and only add noise to the log. */
const NOISY_SNAPSHOTTERS: Record<2 | 3, string[]> = {
  2: ["aufs", "btrfs", "devmapper", "zfs"],
  3: ["btrfs", "devmapper", "zfs", "blockfile"],
};

/** The CRI plugin ids to disable when CRI is not wanted. */
const CRI_PLUGINS: Record<2 | 3, string[]> = {
  2: ["io.containerd.grpc.v1.cri"],
  3: ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox"],
};

/**
 * Builds the config.toml text for containerd 1.x (version 2) or 2.x (version 3).
 *
 * @throws Error for a proxy plugin name or registry host that cannot be written as given, and
 *   for `cri.plainHttpRegistries` with version 3 (its `registry.mirrors` would make 2.x fall
 *   back to the old pull path; no test needs it there).
 */
export function containerdConfig(o: ContainerdConfigInput): string {
  const v = o.configVersion;
  const disabled = NOISY_SNAPSHOTTERS[v].map((s) => `io.containerd.snapshotter.v1.${s}`);
  if (!o.cri) disabled.unshift(...CRI_PLUGINS[v]);
  const proxies = Object.entries(o.proxySnapshotters ?? {});
  for (const [name] of proxies) if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`bad proxy plugin name ${name}`);
  const lines = [
    `version = ${v}`,
    `root = ${q(o.root)}`,
    `state = ${q(o.state)}`,
    `disabled_plugins = [${disabled.map(q).join(", ")}]`,
    "",
    "[grpc]",
    `  address = ${q(o.address)}`,
    "",
    "[ttrpc]",
    `  address = ${q(`${o.address}.ttrpc`)}`,
    "",
    "[debug]",
    '  level = "debug"',
    "",
    "[metrics]",
    '  address = ""',
    "",
    "[plugins]",
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = ${q(o.optDir)}`,
    '  [plugins."io.containerd.gc.v1.scheduler"]',
    // Defaults, spelled out: GC is also scheduled after deletions; gc() forces it anyway.
    "    pause_threshold = 0.02",
    "    deletion_threshold = 0",
    `    mutation_threshold = ${o.gcMutationThreshold ?? 100}`,
    '    schedule_delay = "0s"',
    '    startup_delay = "100ms"',
  ];
  if (v === 3) {
    for (const sn of ["overlayfs", ...proxies.map(([name]) => name)]) {
      lines.push('  [[plugins."io.containerd.transfer.v1.local".unpack_config]]', `    platform = ${q(hostPlatform())}`, `    snapshotter = ${q(sn)}`);
    }
  }
  if (o.cri) lines.push(...(v === 2 ? criV2(o.cri, o.state) : criV3(o.cri, o.state)));
  if (proxies.length) {
    lines.push("", "[proxy_plugins]");
    for (const [name, socket] of proxies) {
      lines.push(`  [proxy_plugins.${name}]`, '    type = "snapshot"', `    address = ${q(socket)}`);
      if (v === 3) lines.push(`  [proxy_plugins.${name}.exports]`, '    enable_remote_snapshot_annotations = "true"');
    }
  }
  if (o.extraConfig) lines.push("", o.extraConfig);
  return `${lines.join("\n")}\n`;
}

/** Settings every CRI needs on these machines (docs/design.md §6), by name. */
const criCommon = (state: string) => ({
  // Root lacks CAP_SYS_RESOURCE here: RunPodSandbox fails without this (docs/design.md §6).
  runtime: ["restrict_oom_score_adj = true", "netns_mounts_under_state_dir = true"],
  streaming: ['stream_server_address = "127.0.0.1"', 'stream_server_port = "0"', "enable_tls_streaming = false"],
  runc: ['runtime_type = "io.containerd.runc.v2"'],
  runcOptions: [`Root = ${q(join(state, "runc"))}`],
});

const indent = (n: number, ls: string[]) => ls.map((l) => `${" ".repeat(n)}${l}`);
const SANDBOX = "rafsnap.test/pause:latest";

function criV2(cri: CriConfig, state: string): string[] {
  const c = criCommon(state);
  const p = '"io.containerd.grpc.v1.cri"';
  const lines = [
    `  [plugins.${p}]`,
    ...indent(4, [...c.runtime, `sandbox_image = ${q(cri.sandboxImage ?? SANDBOX)}`, ...c.streaming]),
    `  [plugins.${p}.containerd]`,
    ...indent(4, [`snapshotter = ${q(cri.snapshotter ?? "overlayfs")}`, "disable_snapshot_annotations = false", 'default_runtime_name = "runc"']),
    `  [plugins.${p}.containerd.runtimes.runc]`,
    ...indent(4, c.runc),
    `  [plugins.${p}.containerd.runtimes.runc.options]`,
    ...indent(4, c.runcOptions),
  ];
  for (const host of cri.plainHttpRegistries ?? []) {
    if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new Error(`bad registry host ${host}`);
    lines.push(`  [plugins.${p}.registry.mirrors.${q(host)}]`, `    endpoint = [${q(`http://${host}`)}]`);
  }
  return lines;
}

function criV3(cri: CriConfig, state: string): string[] {
  if (cri.plainHttpRegistries?.length) throw new Error("plainHttpRegistries is not supported with containerd 2.x (config version 3)");
  const c = criCommon(state);
  const images = '"io.containerd.cri.v1.images"';
  const runtime = '"io.containerd.cri.v1.runtime"';
  return [
    `  [plugins.${images}]`,
    `    snapshotter = ${q(cri.snapshotter ?? "overlayfs")}`,
    `  [plugins.${images}.pinned_images]`,
    `    sandbox = ${q(cri.sandboxImage ?? SANDBOX)}`,
    `  [plugins.${runtime}]`,
    ...indent(4, c.runtime),
    `  [plugins.${runtime}.containerd]`,
    '    default_runtime_name = "runc"',
    `  [plugins.${runtime}.containerd.runtimes.runc]`,
    ...indent(4, c.runc),
    `  [plugins.${runtime}.containerd.runtimes.runc.options]`,
    ...indent(4, c.runcOptions),
    '  [plugins."io.containerd.grpc.v1.cri"]',
    ...indent(4, c.streaming),
  ];
}
