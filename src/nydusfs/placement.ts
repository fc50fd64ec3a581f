/**
 * `daemon_mode` shared and dedicated as two strategies: how a RAFS instance is put on a
 * daemon, where its nydusd config file lives, how it is named in the daemon's API and how it
 * is taken off again. An existing instance follows its daemon's recorded mode (a changed
 * `daemon_mode` applies to new instances only).
 */
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../cache/index.ts";
import { failedPrecondition, isNotFound } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { daemonConfigFile, type Manager, type PrefetchLists } from "../manager/index.ts";
import type { DaemonRow, DaemonStore, InstanceRow } from "../store/index.ts";
import type { NydusdJson } from "./daemon-config.ts";

/** A new instance to serve. */
export interface Placing {
  metaId: string;
  imageRef: string;
  snapshotDir: string;
  /** The bootstrap's path (`<snapshotDir>/fs/image/image.boot` or the legacy one). */
  bootstrap: string;
  /** The instance's nydusd config, JSON text. */
  config: string;
}

/** Where an instance is served: its daemon and its RAFS mountpoint. */
export interface Placed {
  daemonId: string;
  mountpoint: string;
}

/** One daemon mode: see the module comment. */
export interface Placement {
  /** The file holding the nydusd config of instance `metaId` on daemon `d`. */
  configFile(d: DaemonRow, metaId: string): string;
  /** The instance's id in its daemon's API: `/<metaId>` on a shared daemon, `/` on a dedicated one. */
  apiId(metaId: string): string;
  /**
   * Serves a new instance (writes its config file, mounts it). Throws the daemon's error
   * (Unavailable when it does not come up, FailedPrecondition when the shared daemon is gone);
   * a dedicated daemon that failed to start is not left behind.
   */
  place(p: Placing): Promise<Placed>;
  /** Undoes {@link Placement.place} when the instance record could not be written; never throws for the unmount. */
  undo(daemonId: string, metaId: string): Promise<void>;
  /** Takes the recorded instance `inst` off daemon `d` and drops its record. */
  remove(inst: InstanceRow, d: DaemonRow | undefined): Promise<void>;
}

/** What both placements need. */
export interface PlacementDeps {
  manager: Manager;
  store: DaemonStore;
  log: Logger;
}

/**
 * Dedicated mode: one daemon per instance, mounted at `<snapshotDir>/mnt`, its config at
 * `<configDir>/config.json`; started with the image's prefetch list when one is waiting.
 * Removing the instance stops its daemon (the store drops the daemon's instances with it).
 */
export class DedicatedPlacement implements Placement {
  constructor(
    private readonly deps: PlacementDeps,
    private readonly prefetch?: PrefetchLists,
  ) {}

  configFile(d: DaemonRow): string {
    return daemonConfigFile(d.configDir);
  }

  apiId(): string {
    return "/";
  }

  async place(p: Placing): Promise<Placed> {
    const m = this.deps.manager;
    const mountpoint = join(p.snapshotDir, "mnt");
    mkdirSync(mountpoint, { recursive: true, mode: 0o755 });
    const row = m.newRow("dedicated", mountpoint, p.bootstrap);
    writeFileAtomic(this.configFile(row), p.config);
    await m.create(row, this.prefetch?.take(p.imageRef));
    return { daemonId: row.id, mountpoint };
  }

  async undo(daemonId: string): Promise<void> {
    await this.deps.manager.destroy(daemonId);
  }

  async remove(inst: InstanceRow): Promise<void> {
    await this.deps.manager.destroy(inst.daemonId);
  }
}

/**
 * Shared mode: one daemon (mounted at `mountpoint`) serves every instance at
 * `<mountpoint>/<metaId>`, each with its config at `<configDir>/<metaId>/config.json`, mounted
 * and unmounted through the daemon's API. The shared daemon is adopted from the store or
 * started with the bare template ({@link SharedPlacement.ensure}).
 */
export class SharedPlacement implements Placement {
  private id: string | undefined;

  constructor(
    private readonly deps: PlacementDeps,
    private readonly mountpoint: string,
    private readonly template: NydusdJson,
  ) {}

  /** Takes recorded shared daemon `id` as the shared daemon, unless one is taken already. */
  adopt(id: string): void {
    this.id ??= id;
  }

  /** Starts the shared daemon when none was adopted; throws as `Manager.create`. */
  async ensure(): Promise<void> {
    if (this.id !== undefined) return;
    const row = this.deps.manager.newRow("shared", this.mountpoint, null);
    writeFileAtomic(daemonConfigFile(row.configDir), JSON.stringify(this.template));
    await this.deps.manager.create(row);
    this.id = row.id;
  }

  /** Stops the shared daemon when it serves no instance (at shutdown). */
  async close(): Promise<void> {
    const id = this.id;
    if (id && !this.deps.store.listInstances().some((i) => i.daemonId === id)) {
      await this.deps.manager.destroy(id);
      this.id = undefined;
    }
  }

  configFile(d: DaemonRow, metaId: string): string {
    return daemonConfigFile(d.configDir, metaId);
  }

  apiId(metaId: string): string {
    return `/${metaId}`;
  }

  async place(p: Placing): Promise<Placed> {
    const m = this.deps.manager;
    const daemonId = this.id as string;
    const d = m.daemon(daemonId);
    if (!d) throw failedPrecondition(`the shared nydusd ${daemonId} is not running`);
    await m.waitReady(daemonId);
    writeFileAtomic(this.configFile(d, p.metaId), p.config);
    await m.client(daemonId).mount(this.apiId(p.metaId), { source: p.bootstrap, fs_type: "rafs", config: p.config });
    return { daemonId, mountpoint: join(d.mountpoint, p.metaId) };
  }

  async undo(daemonId: string, metaId: string): Promise<void> {
    await this.deps.manager
      .client(daemonId)
      .umount(this.apiId(metaId))
      .catch(() => {});
  }

  async remove(inst: InstanceRow, d: DaemonRow): Promise<void> {
    const m = this.deps.manager;
    try {
      await m.client(inst.daemonId).umount(this.apiId(inst.snapshotId));
    } catch (e) {
      if (!isNotFound(e)) this.deps.log.warn(`umount of instance ${inst.snapshotId}: ${(e as Error).message}`);
    }
    this.deps.store.removeInstance(inst.snapshotId);
    rmSync(dirname(this.configFile(d, inst.snapshotId)), { recursive: true, force: true });
    await m.saveState(inst.daemonId);
  }
}
