// Where a daemon's registry credentials come from, in nydus-snapshotter's order.
import { Label } from "../labels/index.ts";
import type { Logger } from "../log/index.ts";
import { type Credentials, credentialsFromDockerConfig, parseImageRef } from "../registry/index.ts";
import type { CriAuthStore } from "./cri-auth.ts";
import type { KubeletProviders } from "./kubelet.ts";

/** Where credentials were found. */
export type CredentialSource = "labels" | "cri" | "docker-config" | "kubelet";

/** Credentials and where they came from. */
export interface Resolved {
  credentials: Credentials;
  source: CredentialSource;
}

/** What {@link Keychain} asks; each source is optional. */
export interface KeychainOptions {
  /** PullImage credentials the CRI proxy kept (`enable_cri_keychain`). */
  cri?: CriAuthStore;
  /** docker `config.json` to read; the docker CLI's default when undefined. */
  dockerConfig?: string;
  /** Kubelet credential provider plugins (`enable_kubelet_credential_providers`). */
  kubelet?: KubeletProviders;
  logger: Logger;
}

/**
 * The credential lookup of nydus-snapshotter (docs/compat.md §4.5): the pull labels
 * (`pullusername`/`pullsecret`), then the CRI proxy's PullImage credentials for the image,
 * then docker `config.json` for its registry, then the kubelet credential providers. Every
 * source hands credentials only for the image's own registry. A docker config that cannot
 * be read is logged (never its contents) and skipped.
 */
export class Keychain {
  private readonly log: Logger;
  /** Images whose daemons got the credentials of their pull labels: not renewed. */
  private readonly labelled = new Set<string>();

  constructor(private readonly opts: KeychainOptions) {
    this.log = opts.logger.withTag("auth");
  }

  /**
   * Credentials for `imageRef`, or undefined. `labels` are the meta snapshot's (none during
   * renewal); `fresh` makes the kubelet providers run their plugins again instead of using
   * cached answers. InvalidArgument for a malformed reference.
   */
  async resolve(imageRef: string, labels: Record<string, string> = {}, fresh = false): Promise<Resolved | undefined> {
    const secret = labels[Label.PullSecret];
    if (secret !== undefined) {
      const user = labels[Label.PullUsername];
      this.labelled.add(imageRef);
      return { source: "labels", credentials: user ? { username: user, password: secret } : { identityToken: secret } };
    }
    const ref = parseImageRef(imageRef);
    const cri = this.opts.cri?.get(imageRef);
    if (cri) return { source: "cri", credentials: cri };
    try {
      const d = credentialsFromDockerConfig(ref.host, this.opts.dockerConfig);
      if (d) return { source: "docker-config", credentials: d };
    } catch (e) {
      this.log.warn(`docker config skipped: ${(e as Error).message}`);
    }
    const k = await this.opts.kubelet?.lookup(imageRef, fresh);
    if (k) return { source: "kubelet", credentials: k };
    return undefined;
  }

  /** True when `imageRef` was mounted with credentials from its pull labels (renewal leaves those alone). */
  fromLabels(imageRef: string): boolean {
    return this.labelled.has(imageRef);
  }
}
