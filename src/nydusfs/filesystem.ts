import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { blobCacheUsage, writeFileAtomic } from "../cache/index.ts";
import { failedPrecondition, invalidArgument } from "../errdefs/index.ts";
import { Label } from "../labels/index.ts";
import type { Logger } from "../log/index.ts";
import type { Manager, PrefetchLists } from "../manager/index.ts";
import { isBlobId } from "../rafs/index.ts";
import { type Credentials, parseImageRef } from "../registry/index.ts";
import type { DaemonStore, InstanceRow } from "../store/index.ts";
import { bootstrapPath, copyBlobMeta, FS_VERSION_BYTES, fsVersion, readBootstrap, stableBootstrap } from "./bootstrap.ts";
import { collectBlobCaches, type GcStats } from "./cache-gc.ts";
import { authOf, fillAuth, instanceConfig, loadTemplate, type NydusdJson, pickMirror } from "./daemon-config.ts";
import { unmountUnder } from "./leftovers.ts";
import { DedicatedPlacement, type Placement, SharedPlacement } from "./placement.ts";

/**
 * The configuration {@link NydusFs} reads: the fields of rafsnap's `Config` it uses and no
 * others (the composition root picks them). Shaped as the TOML sections they come from.
 */
export interface NydusFsConfig {
  /** The snapshotter root: the shared daemon mounts at `<root>/mnt`. */
  root: string;
  /** `dedicated` / `shared` daemons, or `none`: no daemons, extraoption mounts only. */
  daemon_mode: "dedicated" | "shared" | "none";
  /** `[daemon]`: the nydusd config template and the driver recorded on each instance. */
  daemon: { nydusd_config: string; fs_driver: string };
  /** `[cache_manager]`: where the blob caches live (made 0700 at construction). */
  cache_manager: { cache_dir: string };
  /** `[remote.mirrors_config] dir`: containerd `hosts.toml` mirrors; "" for none. */
  remote: { mirrors_config: { dir: string } };
}

/** What {@link NydusFs} needs. */
export interface NydusFsOptions {
  config: NydusFsConfig;
  manager: Manager;
  store: DaemonStore;
  logger: Logger;
  /** Prefetch lists per image (system controller); a dedicated daemon takes its image's. */
  prefetch?: PrefetchLists;
  /**
   * Registry credentials for an image (the service's keychain; `labels` are the meta
   * snapshot's). Without it the pull labels, then docker `config.json`, are read.
   */
  credentials?: CredentialLookup;
}

/** Finds registry credentials for an image; undefined when there are none. */
export type CredentialLookup = (imageRef: string, labels: Record<string, string>) => Promise<Credentials | undefined>;

/**
 * The image reference of a nydus meta snapshot from its labels (`cri.image-ref`, else the
 * stargz reference). InvalidArgument naming the label and how to get it when there is none.
 */
export function imageRefOf(metaId: string, labels: Record<string, string>): string {
  const ref = labels[Label.CRIImageRef] ?? labels[Label.StargzReference];
  if (!ref) {
    throw invalidArgument(
      `nydus image of snapshot ${metaId}: no image reference label (${Label.CRIImageRef}); pull nydus images through containerd's CRI plugin (snapshotter "nydus", disable_snapshot_annotations = false) or nerdctl/ctr-remote, which add it`,
    );
  }
  return ref;
}

/**
 * The nydus remote filesystem: RAFS instances over the daemon manager (docs/compat.md §4.2), one
 * per nydus image (keyed by its meta snapshot id), served by its own daemon (`daemon_mode`
 * dedicated) or by the shared one (shared) — see placement.ts —, recorded in the store with a
 * sequence number; plus the cache usage and GC of §8 and the unmounting of leftovers.
 * Implements the snapshotter's `RemoteFs` port. Construction reads the nydusd config template
 * (InvalidArgument for a bad one) and creates the cache directory.
 */
export class NydusFs {
  private readonly log: Logger;
  private readonly template: NydusdJson;
  private readonly shared: SharedPlacement;
  private readonly dedicated: DedicatedPlacement;
  private readonly locks = new Map<string, Promise<unknown>>();
  readonly gcStats: GcStats = { inUse: 0, deleted: 0, deletionErrors: 0, skippedRounds: 0 };

  constructor(private readonly opts: NydusFsOptions) {
    this.log = opts.logger.withTag("rafs");
    const t = loadTemplate(opts.config.daemon.nydusd_config);
    this.template = t.template;
    this.log.info(`nydusd config template: ${t.source}`);
    mkdirSync(this.cacheDir, { recursive: true, mode: 0o700 });
    const deps = { manager: opts.manager, store: opts.store, log: this.log };
    this.shared = new SharedPlacement(deps, join(opts.config.root, "mnt"), this.template);
    this.dedicated = new DedicatedPlacement(deps, opts.prefetch);
  }

  /** True when `daemon_mode` is "none": never start daemons, always answer extraoption mounts. */
  get daemonless(): boolean {
    return this.opts.config.daemon_mode === "none";
  }

  private get cacheDir(): string {
    return this.opts.config.cache_manager.cache_dir;
  }

  /** The placement of an instance on a daemon recorded with `mode`. */
  private placementOf(mode: string | undefined): Placement {
    return mode === "shared" ? this.shared : this.dedicated;
  }

  /**
   * Brings the daemons back after a restart (see `Manager.recover`), removes daemons
   * recorded without any instance (a crash between starting one and recording its instance),
   * and in shared mode starts the shared daemon when there is none. Returns the daemons that
   * could not be brought back (id → why); throws when the shared daemon does not start.
   */
  async init(): Promise<Map<string, string>> {
    const failed = this.daemonless ? new Map<string, string>() : await this.opts.manager.recover();
    const used = new Set(this.opts.store.listInstances().map((i) => i.daemonId));
    for (const d of this.opts.store.listDaemons()) {
      if (d.mode === "shared") this.shared.adopt(d.id);
      else if (!used.has(d.id)) {
        this.log.info(`daemon ${d.id} serves no instance; stopping it`);
        await this.opts.manager.destroy(d.id);
      }
    }
    if (this.opts.config.daemon_mode === "shared") await this.shared.ensure();
    return failed;
  }

  /** Serialises work on one instance key. */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    this.locks.set(key, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === next) this.locks.delete(key);
    }
  }

  private async configFor(metaId: string, imageRef: string, labels: Record<string, string>): Promise<NydusdJson> {
    const dir = this.opts.config.remote.mirrors_config.dir;
    const mirror = dir ? await pickMirror(dir, parseImageRef(imageRef).host) : undefined;
    const facts = { imageRef, rafsKey: metaId, cacheDir: this.cacheDir, labels, mirror };
    const lookup = this.opts.credentials;
    if (!lookup) return instanceConfig(this.template, facts);
    return instanceConfig(this.template, { ...facts, credentials: (await lookup(imageRef, labels)) ?? null });
  }

  /** The mounted instances: meta snapshot id and image reference. */
  instances(): { snapshotId: string; imageRef: string }[] {
    return this.opts.store.listInstances().map((i) => ({ snapshotId: i.snapshotId, imageRef: i.imageId }));
  }

  /**
   * Credential renewal for the instance of `metaId`: puts `creds` into its config file (0600,
   * read again when its daemon restarts or re-mounts) and, for a user and password, into the
   * running daemon with `PUT /api/v1/config` (`registry_auth`; id `/<metaId>` on the shared
   * daemon, `/` on a dedicated one); a token is written to the file only, as nydus does.
   * Returns false (nothing done) when the instance is gone, its backend is not a registry or
   * the credentials are the ones it has; throws the daemon's error (Unavailable…) otherwise.
   */
  async updateCredentials(metaId: string, creds: Credentials): Promise<boolean> {
    return this.locked(metaId, async () => {
      const inst = this.opts.store.getInstance(metaId);
      const d = inst ? this.opts.manager.daemon(inst.daemonId) : undefined;
      if (!inst || !d) return false;
      const placement = this.placementOf(d.mode);
      const file = placement.configFile(d, metaId);
      const cfg = JSON.parse(readFileSync(file, "utf8")) as NydusdJson;
      if (cfg.device?.backend?.type !== "registry") return false;
      const bc = cfg.device.backend.config;
      const before = JSON.stringify(bc);
      fillAuth(bc, creds);
      if (JSON.stringify(bc) === before) return false;
      writeFileAtomic(file, JSON.stringify(cfg));
      if ("username" in creds) {
        await this.opts.manager.waitReady(d.id);
        await this.opts.manager.client(d.id).updateConfig(placement.apiId(metaId), { registry_auth: authOf(creds) });
      }
      return true;
    });
  }

  private brokenError(inst: InstanceRow): Error {
    return failedPrecondition(`image ${inst.imageId} (snapshot ${inst.snapshotId}) is not usable: ${inst.problem}`);
  }

  /** See `RemoteFs.mount`: validates the bootstrap, places the instance and records it. */
  async mount(metaId: string, snapshotDir: string, labels: Record<string, string>, imageBlobs: readonly string[]): Promise<string> {
    return this.locked(metaId, async () => {
      const existing = this.opts.store.getInstance(metaId);
      if (existing) {
        if (existing.status === "broken") throw this.brokenError(existing);
        await this.opts.manager.waitReady(existing.daemonId);
        return existing.mountpoint;
      }
      const imageRef = imageRefOf(metaId, labels);
      const blobs = await stableBootstrap(snapshotDir, imageRef);
      const blobIds = blobs.map((b) => b.blobId);
      // A bootstrap reads only blobs of its own image: a blob id it could name from another
      // image would be served from the shared cache (or the other image's daemon).
      const mine = new Set(imageBlobs);
      const foreign = blobIds.find((id) => !mine.has(id));
      if (foreign !== undefined) {
        throw failedPrecondition(
          `image ${imageRef}: its bootstrap reads blob ${foreign}, which is neither a layer of the image nor a reference blob its bootstrap layer declares; refused`,
        );
      }
      const bootstrap = bootstrapPath(snapshotDir);
      for (const why of copyBlobMeta(snapshotDir, blobs, this.cacheDir)) this.log.warn(`image ${imageRef}: blob meta not taken into the cache: ${why}`);
      const config = JSON.stringify(await this.configFor(metaId, imageRef, labels));
      const placement = this.opts.config.daemon_mode === "shared" ? this.shared : this.dedicated;
      const { daemonId, mountpoint } = await placement.place({ metaId, imageRef, snapshotDir, bootstrap, config });
      try {
        this.opts.store.addInstance({
          snapshotId: metaId,
          imageId: imageRef,
          daemonId,
          fsDriver: this.opts.config.daemon.fs_driver,
          snapshotDir,
          bootstrap,
          mountpoint,
          blobIds,
          annotations: {},
        });
      } catch (e) {
        await this.placementOf(this.opts.manager.daemon(daemonId)?.mode).undo(daemonId, metaId);
        throw e;
      }
      await this.opts.manager.saveState(daemonId);
      this.log.info(`mounted ${imageRef} (snapshot ${metaId}) at ${mountpoint} on daemon ${daemonId}`);
      return mountpoint;
    });
  }

  /** See `RemoteFs.ready`. */
  async ready(metaId: string): Promise<string | undefined> {
    const inst = this.opts.store.getInstance(metaId);
    if (!inst) return undefined;
    if (inst.status === "broken") throw this.brokenError(inst);
    await this.opts.manager.waitReady(inst.daemonId);
    return inst.mountpoint;
  }

  /** See `RemoteFs.umount`. */
  async umount(metaId: string): Promise<void> {
    await this.locked(metaId, async () => {
      const inst = this.opts.store.getInstance(metaId);
      if (!inst) return;
      const d = this.opts.manager.daemon(inst.daemonId) ?? this.opts.store.getDaemon(inst.daemonId);
      await this.placementOf(d?.mode).remove(inst, d);
      this.log.info(`unmounted ${inst.imageId} (snapshot ${metaId})`);
    });
  }

  /**
   * At shutdown: with `cleanupOnClose` every instance is unmounted (dedicated daemons stop);
   * the shared daemon is stopped only when it serves nothing. Dedicated daemons otherwise
   * keep running for the next rafsnap to adopt (§3.4 Close).
   */
  async close(cleanupOnClose: boolean): Promise<void> {
    if (cleanupOnClose) for (const i of this.opts.store.listInstances()) await this.umount(i.snapshotId).catch(() => {});
    await this.shared.close();
  }

  /** See `RemoteFs.unmountUnder`. */
  async unmountUnder(dir: string): Promise<void> {
    await unmountUnder(dir, this.log);
  }

  /** See `RemoteFs.cacheUsage`: 0 for a digest that is not a blob id. */
  cacheUsage(digest: string): number {
    const hex = digest.startsWith("sha256:") ? digest.slice(7) : digest;
    return isBlobId(hex) ? blobCacheUsage(this.cacheDir, hex) : 0;
  }

  /** See `RemoteFs.extraOption`. */
  async extraOption(metaId: string, snapshotDir: string, labels: Record<string, string>): Promise<{ source: string; config: string; fs_version: string }> {
    const imageRef = imageRefOf(metaId, labels);
    // Read (beneath the layer, no links) before its path is handed to another program.
    const bytes = readBootstrap(snapshotDir, imageRef, FS_VERSION_BYTES);
    return { source: bootstrapPath(snapshotDir), config: JSON.stringify(await this.configFor(metaId, imageRef, labels)), fs_version: fsVersion(bytes) };
  }

  /**
   * Removes the cache files of every blob no instance reads (§8, see cache-gc.ts). Skips the
   * round (counted) while a mount is in progress or any instance's blob list is unknown.
   */
  async gc(): Promise<void> {
    const insts = this.opts.store.listInstances();
    if (this.locks.size > 0 || insts.some((i) => i.blobIds === null)) {
      this.gcStats.skippedRounds++;
      this.log.info("cache GC skipped: a mount is in progress or an instance's blobs are unknown");
      return;
    }
    collectBlobCaches(this.cacheDir, new Set(insts.flatMap((i) => i.blobIds ?? [])), this.gcStats, this.log);
  }
}
