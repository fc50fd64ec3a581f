// `[remote.auth] credential_renewal_interval`: running daemons get fresh credentials.
import type { Logger } from "../log/index.ts";
import type { Credentials } from "../registry/index.ts";
import type { Keychain } from "./keychain.ts";

/** The daemons' side of renewal (the manager's `NydusFs`). */
export interface RenewalTarget {
  /** Mounted instances: meta snapshot id and image reference. */
  instances(): { snapshotId: string; imageRef: string }[];
  /** Gives instance `snapshotId` new credentials; false when nothing changed. */
  updateCredentials(snapshotId: string, creds: Credentials): Promise<boolean>;
}

/** What {@link CredentialRenewal} needs. */
export interface RenewalOptions {
  keychain: Keychain;
  target: RenewalTarget;
  intervalMs: number;
  logger: Logger;
  /**
   * Told after each round: every image renewal looked up, whether that worked, and the images
   * it keeps credentials for (for `snapshotter_credential_*` metrics). Never given secrets.
   */
  onRound?: (attempts: readonly { imageRef: string; ok: boolean }[], kept: ReadonlySet<string>) => void;
}

/** Outcome of one renewal round. */
export interface RenewalRound {
  /** Instances that got new credentials. */
  renewed: number;
  /** Instances whose credentials could not be found or pushed. */
  failed: number;
}

/**
 * Every `intervalMs`, looks up the credentials of each mounted instance's image again (the
 * keychain without labels: CRI, docker config, kubelet providers — cached plugin answers are
 * reused until their cache duration ends) and hands changed ones to the running daemons
 * (`PUT /api/v1/config`), so a long-running container keeps reading after its registry
 * token expired. Images mounted with pull-label credentials are left alone. Rounds never
 * overlap; failures are logged by image (never the secret) and retried next round.
 */
export class CredentialRenewal {
  private timer: ReturnType<typeof setInterval> | undefined;
  private round: Promise<RenewalRound> | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: RenewalOptions) {
    this.log = opts.logger.withTag("auth");
  }

  /** Starts the rounds (idempotent). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.renewOnce(), this.opts.intervalMs);
    this.timer.unref?.();
    this.log.info(`credential renewal every ${this.opts.intervalMs} ms`);
  }

  /** Stops the rounds and waits for one in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.round?.catch(() => {});
  }

  /** Runs one round now (or joins the one in progress). */
  renewOnce(): Promise<RenewalRound> {
    this.round ??= this.run().finally(() => {
      this.round = undefined;
    });
    return this.round;
  }

  private async run(): Promise<RenewalRound> {
    const out: RenewalRound = { renewed: 0, failed: 0 };
    const attempts: { imageRef: string; ok: boolean }[] = [];
    const kept = new Set<string>();
    for (const i of this.opts.target.instances()) {
      if (this.opts.keychain.fromLabels(i.imageRef)) continue;
      try {
        const found = await this.opts.keychain.resolve(i.imageRef);
        if (!found) continue;
        kept.add(i.imageRef);
        const changed = await this.opts.target.updateCredentials(i.snapshotId, found.credentials);
        attempts.push({ imageRef: i.imageRef, ok: true });
        if (changed) {
          out.renewed++;
          this.log.info(`renewed the registry credentials of ${i.imageRef} (snapshot ${i.snapshotId}, from ${found.source})`);
        }
      } catch (e) {
        out.failed++;
        attempts.push({ imageRef: i.imageRef, ok: false });
        this.log.warn(`credential renewal of ${i.imageRef} (snapshot ${i.snapshotId}) failed: ${(e as Error).message}`);
      }
    }
    this.opts.onRound?.(attempts, kept);
    return out;
  }
}
