import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { blobCacheUsage, writeFileAtomic } from "../cache/index.ts";
import type { Config } from "../config/index.ts";
import { failedPrecondition, invalidArgument, isNotFound } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { mountPoints, UmountFlags, umountAsync } from "../mount/index.ts";
import { isBlobId } from "../rafs/index.ts";
import { type Credentials, parseImageRef } from "../registry/index.ts";
import type { DaemonStore, InstanceRow } from "../store/index.ts";
import { bootstrapPath, copyBlobMeta, FS_VERSION_BYTES, fsVersion, readBootstrap, stableBootstrap } from "./bootstrap.ts";
import { authOf, fillAuth, instanceConfig, loadTemplate, type NydusdJson, pickMirror } from "./daemon-config.ts";
import type { Manager } from "./manager.ts";
import { Label } from "../labels/index.ts";
import type { PrefetchLists } from "./prefetch.ts";


/** Counters of the blob cache GC (§8). */
export interface GcStats {
  inUse: number;
  deleted: number;
  deletionErrors: number;
  skippedRounds: number;
}

/** What {@link NydusFs} needs. */
export interface NydusFsOptions {
  config: Config;
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

/** Strips the cache file suffixes of §8 from a cache file name, leaving the blob id. */
export function blobIdOfCacheFile(name: string): string {
  for (const suffix of [".blob.data.chunk_map", ".chunk_map", ".blob.data", ".blob.meta", ".image.disk", ".layer.disk"]) {
    if (name.endsWith(suffix)) return name.slice(0, -suffix.length);
  }
  return name;
}

/**
 * RAFS instances over the daemon manager (docs/compat.md §4.2): one instance per nydus image
 * (keyed by its meta snapshot id), served by its own daemon (`daemon_mode` dedicated) or by
 * the shared one (shared), recorded with a sequence number; plus the cache usage and GC of
 * §8. Implements the snapshotter's `RemoteFs` port.
 */
export class NydusFs {
  private readonly log: Logger;
  private template: NydusdJson;
  private sharedId: string | undefined;
  private readonly locks = new Map<string, Promise<unknown>>();
  readonly gcStats: GcStats = { inUse: 0, deleted: 0, deletionErrors: 0, skippedRounds: 0 };

  constructor(private readonly opts: NydusFsOptions) {
    this.log = opts.logger.withTag("rafs");
    const t = loadTemplate(opts.config.daemon.nydusd_config);
    this.template = t.template;
    this.log.info(`nydusd config template: ${t.source}`);
    mkdirSync(this.cacheDir, { recursive: true, mode: 0o700 });
  }

  get daemonless(): boolean {
    return this.opts.config.daemon_mode === "none";
  }

  private get cacheDir(): string {
    return this.opts.config.cache_manager.cache_dir;
  }

  /**
   * Brings the daemons back after a restart (see `Manager.recover`), removes daemons
   * recorded without any instance (a crash between starting one and recording its instance),
   * and in shared mode starts the shared daemon when there is none. Returns the daemons that
   * could not be brought back (id → why).
   */
  async init(): Promise<Map<string, string>> {
    const failed = this.daemonless ? new Map<string, string>() : await this.opts.manager.recover();
    const used = new Set(this.opts.store.listInstances().map((i) => i.daemonId));
    for (const d of this.opts.store.listDaemons()) {
      if (d.mode === "shared") this.sharedId ??= d.id;
      else if (!used.has(d.id)) {
        this.log.info(`daemon ${d.id} serves no instance; stopping it`);
        await this.opts.manager.destroy(d.id);
      }
    }
    if (this.opts.config.daemon_mode === "shared" && this.sharedId === undefined) {
      const row = this.opts.manager.newRow("shared", join(this.opts.config.root, "mnt"), null);
      writeFileAtomic(join(row.configDir, "config.json"), JSON.stringify(this.template));
      await this.opts.manager.create(row);
      this.sharedId = row.id;
    }
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

  private imageRef(metaId: string, labels: Record<string, string>): string {
    const ref = labels[Label.CRIImageRef] ?? labels[Label.StargzReference];
    if (!ref) {
      throw invalidArgument(
        `nydus image of snapshot ${metaId}: no image reference label (${Label.CRIImageRef}); pull nydus images through containerd's CRI plugin (snapshotter "nydus", disable_snapshot_annotations = false) or nerdctl/ctr-remote, which add it`,
      );
    }
    return ref;
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
      const file = d.mode === "shared" ? join(d.configDir, metaId, "config.json") : join(d.configDir, "config.json");
      const cfg = JSON.parse(readFileSync(file, "utf8")) as NydusdJson;
      if (cfg.device?.backend?.type !== "registry") return false;
      const bc = cfg.device.backend.config;
      const before = JSON.stringify(bc);
      fillAuth(bc, creds);
      if (JSON.stringify(bc) === before) return false;
      writeFileAtomic(file, JSON.stringify(cfg));
      if ("username" in creds) {
        await this.opts.manager.waitReady(d.id);
        await this.opts.manager.client(d.id).updateConfig(d.mode === "shared" ? `/${metaId}` : "/", { registry_auth: authOf(creds) });
      }
      return true;
    });
  }

  private brokenError(inst: InstanceRow): Error {
    return failedPrecondition(`image ${inst.imageId} (snapshot ${inst.snapshotId}) is not usable: ${inst.problem}`);
  }

  async mount(metaId: string, snapshotDir: string, labels: Record<string, string>, imageBlobs: readonly string[]): Promise<string> {
    return this.locked(metaId, async () => {
      const existing = this.opts.store.getInstance(metaId);
      if (existing) {
        if (existing.status === "broken") throw this.brokenError(existing);
        await this.opts.manager.waitReady(existing.daemonId);
        return existing.mountpoint;
      }
      const imageRef = this.imageRef(metaId, labels);
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
      const cfg = JSON.stringify(await this.configFor(metaId, imageRef, labels));
      const m = this.opts.manager;
      let daemonId: string;
      let mountpoint: string;
      if (this.opts.config.daemon_mode === "shared") {
        daemonId = this.sharedId as string;
        const d = m.daemon(daemonId);
        if (!d) throw failedPrecondition(`the shared nydusd ${daemonId} is not running`);
        await m.waitReady(daemonId);
        mountpoint = join(d.mountpoint, metaId);
        writeFileAtomic(join(d.configDir, metaId, "config.json"), cfg);
        await m.client(daemonId).mount(`/${metaId}`, { source: bootstrap, fs_type: "rafs", config: cfg });
      } else {
        mountpoint = join(snapshotDir, "mnt");
        mkdirSync(mountpoint, { recursive: true, mode: 0o755 });
        const row = m.newRow("dedicated", mountpoint, bootstrap);
        writeFileAtomic(join(row.configDir, "config.json"), cfg);
        await m.create(row, this.opts.prefetch?.take(imageRef));
        daemonId = row.id;
      }
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
        await this.undo(daemonId, metaId);
        throw e;
      }
      await m.saveState(daemonId);
      this.log.info(`mounted ${imageRef} (snapshot ${metaId}) at ${mountpoint} on daemon ${daemonId}`);
      return mountpoint;
    });
  }

  /** Undoes a mount whose record could not be written. */
  private async undo(daemonId: string, metaId: string): Promise<void> {
    const d = this.opts.manager.daemon(daemonId);
    if (d?.mode === "shared") await this.opts.manager.client(daemonId).umount(`/${metaId}`).catch(() => {});
    else await this.opts.manager.destroy(daemonId);
  }

  async ready(metaId: string): Promise<string | undefined> {
    const inst = this.opts.store.getInstance(metaId);
    if (!inst) return undefined;
    if (inst.status === "broken") throw this.brokenError(inst);
    await this.opts.manager.waitReady(inst.daemonId);
    return inst.mountpoint;
  }

  async umount(metaId: string): Promise<void> {
    await this.locked(metaId, async () => {
      const inst = this.opts.store.getInstance(metaId);
      if (!inst) return;
      const m = this.opts.manager;
      const d = m.daemon(inst.daemonId) ?? this.opts.store.getDaemon(inst.daemonId);
      if (d?.mode === "shared") {
        try {
          await m.client(inst.daemonId).umount(`/${metaId}`);
        } catch (e) {
          if (!isNotFound(e)) this.log.warn(`umount of instance ${metaId}: ${(e as Error).message}`);
        }
        this.opts.store.removeInstance(metaId);
        rmSync(join(d.configDir, metaId), { recursive: true, force: true });
        await m.saveState(inst.daemonId);
      } else {
        await m.destroy(inst.daemonId);
      }
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
    const shared = this.sharedId;
    if (shared && !this.opts.store.listInstances().some((i) => i.daemonId === shared)) {
      await this.opts.manager.destroy(shared);
      this.sharedId = undefined;
    }
  }

  async unmountUnder(dir: string): Promise<void> {
    const doomed = mountPoints()
      .filter((p) => p === dir || p.startsWith(`${dir}/`))
      .reverse();
    for (const p of doomed) {
      this.log.warn(`detaching ${p}, still mounted under a snapshot directory being removed`);
      await umountAsync(p, UmountFlags.MNT_DETACH).catch((e) => this.log.warn(`umount ${p}: ${(e as Error).message}`));
    }
  }

  cacheUsage(digest: string): number {
    const hex = digest.startsWith("sha256:") ? digest.slice(7) : digest;
    return isBlobId(hex) ? blobCacheUsage(this.cacheDir, hex) : 0;
  }

  async extraOption(metaId: string, snapshotDir: string, labels: Record<string, string>): Promise<{ source: string; config: string; fs_version: string }> {
    const imageRef = this.imageRef(metaId, labels);
    // Read (beneath the layer, no links) before its path is handed to another program.
    const bytes = readBootstrap(snapshotDir, imageRef, FS_VERSION_BYTES);
    return { source: bootstrapPath(snapshotDir), config: JSON.stringify(await this.configFor(metaId, imageRef, labels)), fs_version: fsVersion(bytes) };
  }

  /**
   * Removes the cache files of every blob no instance reads (§8). Skips the round (counted)
   * while any instance's blob list is unknown.
   */
  async gc(): Promise<void> {
    const insts = this.opts.store.listInstances();
    if (this.locks.size > 0 || insts.some((i) => i.blobIds === null)) {
      this.gcStats.skippedRounds++;
      this.log.info("cache GC skipped: a mount is in progress or an instance's blobs are unknown");
      return;
    }
    const used = new Set(insts.flatMap((i) => i.blobIds ?? []));
    this.gcStats.inUse = used.size;
    let names: string[];
    try {
      names = readdirSync(this.cacheDir).filter((n) => {
        try {
          return statSync(join(this.cacheDir, n)).isFile();
        } catch {
          return false;
        }
      });
    } catch (e) {
      this.log.warn(`cache GC: ${(e as Error).message}`);
      return;
    }
    const order = (n: string) => (n.endsWith("chunk_map") ? 0 : n.endsWith(".blob.meta") ? 1 : n.endsWith(".disk") ? 3 : 2);
    const stale = new Map<string, string[]>();
    for (const n of names) {
      const id = blobIdOfCacheFile(n);
      if (!used.has(id)) stale.set(id, [...(stale.get(id) ?? []), n]);
    }
    for (const [id, files] of stale) {
      try {
        for (const f of files.sort((a, b) => order(a) - order(b))) rmSync(join(this.cacheDir, f), { force: true });
        this.gcStats.deleted++;
      } catch (e) {
        this.gcStats.deletionErrors++;
        this.log.warn(`cache GC: removing blob ${id}: ${(e as Error).message}`);
      }
    }
    if (stale.size) this.log.info(`cache GC removed ${stale.size} blob(s); ${used.size} in use`);
  }
}
