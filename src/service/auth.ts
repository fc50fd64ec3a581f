import {
  CredentialRenewal,
  CriAuthStore,
  type CriProxy,
  criImageProxy,
  imageServiceSocket,
  Keychain,
  KubeletProviders,
  loadProviderConfig,
} from "../auth/index.ts";
import { type Config, durationMs } from "../config/index.ts";
import { failedPrecondition } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import type { Metrics } from "../metrics/index.ts";
import type { CredentialLookup, NydusFs } from "../nydusfs/index.ts";

/** The `[remote.auth]` parts of the service. */
export interface AuthParts {
  keychain: Keychain;
  /** What the daemons' configs get their credentials from. */
  lookup: CredentialLookup;
  /** The CRI ImageService proxy (`enable_cri_keychain`). */
  criProxy?: CriProxy;
}

/**
 * Builds the keychain of `[remote.auth]`: pull labels and docker `config.json` always; the
 * CRI ImageService proxy with `enable_cri_keychain` (forwarding to `image_service_address`,
 * containerd's socket by default); the kubelet credential providers with
 * `enable_kubelet_credential_providers` — FailedPrecondition when `credential_provider_config`
 * or `credential_provider_bin_dir` is not set, InvalidArgument naming the file when the
 * config does not parse.
 */
export function buildAuth(config: Config, logger: Logger): AuthParts {
  const a = config.remote.auth;
  const log = logger.withTag("auth");
  let kubelet: KubeletProviders | undefined;
  if (a.enable_kubelet_credential_providers) {
    if (a.credential_provider_config === "" || a.credential_provider_bin_dir === "") {
      throw failedPrecondition("[remote.auth] enable_kubelet_credential_providers = true needs credential_provider_config and credential_provider_bin_dir");
    }
    const providers = loadProviderConfig(a.credential_provider_config);
    kubelet = new KubeletProviders({ providers, binDir: a.credential_provider_bin_dir, logger });
    log.info(`kubelet credential providers: ${providers.map((p) => p.name).join(", ")} (from ${a.credential_provider_bin_dir})`);
  }
  const cri = a.enable_cri_keychain ? new CriAuthStore() : undefined;
  const keychain = new Keychain({ cri, kubelet, logger });
  const lookup: CredentialLookup = async (imageRef, labels) => {
    const found = await keychain.resolve(imageRef, labels);
    log.debug(`registry credentials for ${imageRef}: ${found ? `from ${found.source}` : "none"}`);
    return found?.credentials;
  };
  let criProxy: CriProxy | undefined;
  if (cri) {
    const upstream = imageServiceSocket(a.image_service_address);
    criProxy = criImageProxy(upstream, cri, logger);
    log.info(`CRI image service proxy to ${upstream}`);
  }
  return { keychain, lookup, criProxy };
}

/** Starts `[remote.auth] credential_renewal_interval` renewal for `fs`; undefined when the interval is 0. */
export function startRenewal(config: Config, auth: AuthParts, fs: NydusFs, logger: Logger, metrics?: Metrics): CredentialRenewal | undefined {
  const ms = durationMs(config.remote.auth.credential_renewal_interval);
  if (ms <= 0) return undefined;
  const onRound = metrics
    ? (attempts: readonly { imageRef: string; ok: boolean }[], kept: ReadonlySet<string>) => {
        for (const a of attempts) metrics.credentialRenewals.inc({ image_ref: a.imageRef, result: a.ok ? "success" : "failure" });
        metrics.credentialStoreEntries.reset();
        for (const ref of kept) metrics.credentialStoreEntries.set({ image_ref: ref }, 1);
      }
    : undefined;
  const r = new CredentialRenewal({ keychain: auth.keychain, target: fs, intervalMs: Math.max(1000, ms), logger, onRound });
  r.start();
  return r;
}
