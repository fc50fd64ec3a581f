import type { Config } from "./types.ts";

/**
 * Settings that turn on features rafsnap does not build, with the value that does: each
 * becomes a start-up warning so that nobody believes, say, signature checks are running. The
 * keys stay valid (a config written for nydus-snapshotter loads unchanged).
 */
export function unbuiltFeatureWarnings(c: Config): string[] {
  const on: [boolean, string][] = [
    [c.system.debug.pprof_address !== "", "[system.debug] pprof_address: there is no pprof server (Go only)"],
    [c.system.debug.daemon_cpu_profile_duration_secs > 0, "[system.debug] daemon_cpu_profile_duration_secs: daemon start-up CPU is not measured"],
    [c.snapshot.enable_kata_volume, "[snapshot] enable_kata_volume: Kata virtual volumes are not built; mounts are plain overlay"],
    [
      c.remote.auth.enable_kubeconfig_keychain,
      "[remote.auth] enable_kubeconfig_keychain: Kubernetes secrets are not read (not built); use enable_cri_keychain or enable_kubelet_credential_providers",
    ],
    [c.experimental.enable_stargz, "[experimental] enable_stargz: eStargz layers are unpacked as plain OCI layers"],
    [c.experimental.enable_referrer_detect, "[experimental] enable_referrer_detect: not built"],
    [c.experimental.enable_index_detect, "[experimental] enable_index_detect: not built"],
    [c.experimental.enable_backend_source, "[experimental] enable_backend_source: not built; credentials stay in the daemon configs (0600)"],
    [c.experimental.tarfs.enable_tarfs, "[experimental.tarfs] enable_tarfs: tarfs is not built; OCI layers are unpacked"],
  ];
  return on.filter(([set]) => set).map(([, msg]) => `${msg} (key accepted for compatibility)`);
}
