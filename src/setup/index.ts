/**
 * Node setup: wiring containerd's config.toml to rafsnap (`rafsnap setup containerd`) and
 * checking a node (`rafsnap doctor`). See docs/setup.md.
 */
export {
  CRI_TABLE,
  PROXY_PLUGIN_NAME,
  configVersion,
  planContainerdConfig,
  type ContainerdConfigVersion,
  type WiringOptions,
  type WiringPlan,
} from "./containerd-config.ts";
export {
  DEFAULT_CONTAINERD_CONFIG,
  setupContainerd,
  type SetupContainerdOptions,
  type SetupContainerdResult,
} from "./setup-containerd.ts";
export { formatReport, runDoctor, type CheckStatus, type DoctorCheck, type DoctorOptions, type DoctorReport } from "./doctor.ts";
export { containerdMajorVersion } from "./probe.ts";
export { unifiedDiff } from "./line-diff.ts";
