import { chmodSync, existsSync, lchownSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { alreadyExists, failedPrecondition, invalidArgument, isAlreadyExists, isNotFound } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import type { Info, Kind, MetaStore, Snapshot, Usage } from "../store/index.ts";
import { diskUsage } from "../sys/index.ts";
import { checkDType } from "./dtype.ts";
import { parseFilters, snapshotInfoAdaptor } from "./filters.ts";
import { validateKey } from "./keys.ts";
import { faultPoint } from "./fault.ts";
import { imageBlobIds, Label, validateLabels, wantsVolatile } from "./labels.ts";
import { type Mount, nativeMounts, type RemoteMountStyle, remoteMounts, type SnapshotPaths, snapshotPaths } from "./mounts.ts";
import type { RemoteFs } from "./remote.ts";

/** What the snapshotter needs to run; built by the composition root. */
export interface SnapshotterOptions {
  /** State root; snapshot directories live in `<root>/snapshots/`. */
  root: string;
  store: MetaStore;
  logger: Logger;
  /** `[snapshot] enable_overlayfs_volatile`: `volatile` on every writable overlay mount. */
  volatileAlways?: boolean;
  /**
   * Mounts nydus images. Without it nydus layers are unpacked like any other layer (the
   * snapshotter is a plain overlay snapshotter).
   */
  remote?: RemoteFs;
  /** Shape of remote mounts; default plain overlay. */
  remoteStyle?: RemoteMountStyle;
}

/** The committed snapshot holding a nydus image's bootstrap, found above a snapshot. */
interface MetaLayer {
  id: string;
  labels: Record<string, string>;
  /** The blob ids the image may read ({@link imageBlobIds}). */
  blobIds: string[];
}

/** A snapshot directory that should not exist: its id is not in the database. */
const isTemp = (name: string) => name.startsWith("new-") || name.startsWith("rm-");

/**
 * The error for a snapshot whose row exists but whose directory `dir` is gone (deleted
 * behind the snapshotter's back): FailedPrecondition naming it and what to do — never
 * NotFound, which containerd would read as "no such snapshot".
 */
function lostDirectory(what: string, dir: string, remedy: string, cause: unknown) {
  return failedPrecondition(`${what} has lost its directory ${dir}; ${remedy}`, cause);
}

/** About how many bytes `info` takes in a List answer: its names and labels. */
function infoBytes(info: Info): number {
  let n = info.name.length + info.parent.length + 64;
  for (const [k, v] of Object.entries(info.labels)) n += k.length + v.length;
  return n;
}

/**
 * containerd snapshot semantics over {@link MetaStore} and plain directories, as containerd's
 * overlay snapshotter implements them. The database is the truth: directories are created in
 * a temp dir and renamed into place inside the metadata transaction, removed only after the
 * metadata commit, and {@link Snapshotter.cleanup} removes any directory the database does
 * not know. Every method validates keys and labels first (InvalidArgument) and throws
 * errors of containerd's kinds (NotFound, AlreadyExists, FailedPrecondition).
 */
export class Snapshotter {
  readonly snapshotsDir: string;
  private readonly paths: SnapshotPaths;
  private readonly log: Logger;

  private constructor(private readonly opts: SnapshotterOptions) {
    this.snapshotsDir = join(opts.root, "snapshots");
    this.paths = snapshotPaths(this.snapshotsDir);
    this.log = opts.logger.withTag("snapshot");
  }

  /**
   * Creates `<root>/snapshots` (0700) and checks that the root supports d_type, which
   * overlayfs needs. Throws FailedPrecondition when it does not.
   */
  static async open(opts: SnapshotterOptions): Promise<Snapshotter> {
    const sn = new Snapshotter(opts);
    mkdirSync(sn.snapshotsDir, { recursive: true, mode: 0o700 });
    if (!(await checkDType(opts.root))) {
      throw failedPrecondition(`root ${opts.root} is on a filesystem without d_type support; overlayfs needs it (XFS: mkfs with ftype=1)`);
    }
    return sn;
  }

  /**
   * Creates an active snapshot `key` on top of committed `parent` and returns its mounts
   * (docs/compat.md §3.2). With a remote filesystem: a nydus data layer being extracted
   * (`containerd.io/snapshot.ref` + `…/nydus-blob`) is committed at once as the target and
   * AlreadyExists is thrown, so containerd never downloads it; a snapshot above a nydus
   * image's bootstrap layer gets the image mounted and an overlay over its RAFS mountpoint.
   */
  async prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const target = labels[Label.TargetSnapshotRef];
    if (target !== undefined && this.opts.remote && Label.NydusDataLayer in labels) {
      this.create("active", key, parent, labels);
      try {
        await this.commit(target, key, labels);
      } catch (e) {
        if (!isAlreadyExists(e)) throw e;
        await this.remove(key); // another unpack got there first: do not leave `key` behind
      }
      throw alreadyExists(`target snapshot ${JSON.stringify(target)}`);
    }
    const mounts = this.create("active", key, parent, labels);
    if (target !== undefined) return mounts; // layer extraction: plain unpack
    return this.remoteOrUndo(key, mounts);
  }

  /** {@link remoteOr} for a snapshot just created: on failure it is removed again. */
  private async remoteOrUndo(key: string, native: Mount[]): Promise<Mount[]> {
    try {
      return await this.remoteOr(key, native);
    } catch (e) {
      await this.remove(key).catch((re) => this.log.warn(`failed to remove ${key} after a failed remote mount`, re));
      throw e;
    }
  }

  /**
   * Creates a read-only view `key` of committed `parent` and returns its mounts; over a nydus
   * image's top layer the image is mounted. InvalidArgument for a view of a nydus data layer.
   */
  async view(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    if (this.opts.remote && parent !== "") {
      const p = this.opts.store.read((tx) => tx.getInfo(parent));
      if (Label.NydusDataLayer in p.info.labels) {
        throw invalidArgument(`only can view nydus topmost layer: ${JSON.stringify(parent)} is a nydus data layer`);
      }
    }
    const mounts = this.create("view", key, parent, labels);
    return this.remoteOrUndo(key, mounts);
  }

  /** Mounts of an active or view snapshot; FailedPrecondition for a committed one. */
  async mounts(key: string): Promise<Mount[]> {
    validateKey("key", key);
    const s = this.opts.store.read((tx) => tx.getSnapshot(key));
    return this.remoteOr(key, this.mountsOf(s, s.labels));
  }

  /** The nearest ancestor of snapshot `key` labelled as a nydus bootstrap layer. */
  private metaLayer(key: string): MetaLayer | undefined {
    return this.opts.store.read((tx) => {
      for (let name = tx.getInfo(key).info.parent; name !== ""; ) {
        const { id, info } = tx.getInfo(name);
        if (Label.NydusMetaLayer in info.labels) {
          const layers: Record<string, string>[] = [];
          for (let below = info.parent; below !== ""; ) {
            const l = tx.getInfo(below).info;
            layers.push(l.labels);
            below = l.parent;
          }
          return { id, labels: info.labels, blobIds: imageBlobIds(info.labels, layers) };
        }
        name = info.parent;
      }
      return undefined;
    });
  }

  /**
   * Remote mounts for snapshot `key` when it sits over a nydus image (mounting the image,
   * or waiting for its daemon), else `native`. A failure to mount fails the call with the
   * remote filesystem's error.
   */
  private async remoteOr(key: string, native: Mount[]): Promise<Mount[]> {
    const remote = this.opts.remote;
    if (!remote) return native;
    const meta = this.metaLayer(key);
    if (!meta) return native; // plain OCI: nothing more to read
    const s = this.opts.store.read((tx) => tx.getSnapshot(key));
    const metaDir = join(this.snapshotsDir, meta.id);
    const style = this.opts.remoteStyle ?? { nydusOverlayfs: false, overlayfsPath: "" };
    const volatile = this.opts.volatileAlways === true || wantsVolatile(s.labels);
    if (remote.daemonless) {
      const extra = await remote.extraOption(meta.id, metaDir, meta.labels);
      return remoteMounts(s, this.paths, join(metaDir, "fs"), {
        volatile,
        style: { ...style, nydusOverlayfs: true },
        extra,
        snapshotDir: join(this.snapshotsDir, s.id),
      });
    }
    const mountpoint = (await remote.ready(meta.id)) ?? (await remote.mount(meta.id, metaDir, meta.labels, meta.blobIds));
    const extra = style.nydusOverlayfs ? await remote.extraOption(meta.id, metaDir, meta.labels) : undefined;
    return remoteMounts(s, this.paths, mountpoint, { volatile, style, extra, snapshotDir: join(this.snapshotsDir, s.id) });
  }

  /**
   * Commits active snapshot `key` as `name` with `labels`, recording its disk usage; a
   * non-empty `parent` (containerd ≥ 2.2) sets the parent at commit time.
   * AlreadyExists when `name` is taken; NotFound/FailedPrecondition for a bad `key`.
   */
  async commit(name: string, key: string, labels: Record<string, string>, parent = ""): Promise<void> {
    validateKey("name", name);
    validateKey("key", key);
    if (parent !== "") validateKey("parent", parent);
    validateLabels(name, labels);
    const { id } = this.opts.store.read((tx) => tx.getInfo(key));
    const fs = this.paths.fs(id);
    const usage = await diskUsage(fs).catch((e) => {
      throw isNotFound(e) ? lostDirectory(`snapshot ${JSON.stringify(key)}`, fs, "remove it and prepare it again", e) : e;
    });
    this.opts.store.write((tx) => tx.commitActive(key, name, usage, labels, parent));
  }

  /**
   * Removes snapshot `key` (FailedPrecondition when it has children) and then its directory.
   * Directory removal failures are logged, not returned: the metadata is gone, and
   * {@link cleanup} retries.
   */
  async remove(key: string): Promise<void> {
    validateKey("key", key);
    if (this.opts.remote) {
      // A nydus image is unmounted before its directory is renamed away (its mountpoint may be
      // inside it) — unless the removal is going to be refused for a child, which still uses it.
      const { id, child } = this.opts.store.read((tx) => ({ id: tx.getInfo(key).id, child: tx.firstChild(key) }));
      if (child === undefined) await this.unmountRemote(id);
    }
    // The rename happens inside the transaction, so the id is free of its directory name once
    // committed. When the COMMIT fails (a full disk), the directory is renamed back before
    // answering; when the process dies in between, the row survives and Cleanup renames the
    // `rm-<id>` of a live row back instead of deleting it (docs/snapshots.md).
    let renamed: { from: string; to: string } | undefined;
    let removed: string | null;
    try {
      removed = this.opts.store.write((tx) => {
        const r = tx.remove(key);
        const from = join(this.snapshotsDir, r.id);
        const to = join(this.snapshotsDir, `rm-${r.id}`);
        try {
          renameSync(from, to);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
          throw e;
        }
        renamed = { from, to };
        faultPoint("remove:renamed");
        return to;
      });
    } catch (e) {
      const back = renamed as { from: string; to: string } | undefined;
      if (back) {
        try {
          renameSync(back.to, back.from);
        } catch (re) {
          this.log.error(`snapshot ${key}: the removal failed and its directory could not be renamed back from ${back.to}; Cleanup will`, re);
        }
      }
      throw e;
    }
    if (removed) await this.removeDir(removed);
  }

  /** Unmounts the nydus image of snapshot dir `dir` (`…/rm-<id>` or `…/<id>`), if any. */
  private async unmountRemote(dir: string): Promise<void> {
    const id = dir.slice(dir.lastIndexOf("/") + 1).replace(/^rm-/, "");
    try {
      await this.opts.remote?.umount(id);
    } catch (e) {
      this.log.warn(`failed to unmount the nydus image of snapshot ${id}; cleanup will retry`, e);
    }
  }

  /** Info of any snapshot; NotFound when missing. */
  stat(key: string): Info {
    validateKey("key", key);
    return this.opts.store.read((tx) => tx.getInfo(key).info);
  }

  /**
   * Updates labels of `info.name` by field paths (`labels`, `labels.<key>`; none = all
   * labels). InvalidArgument for any other path or an oversized label.
   */
  update(info: Info, fieldpaths: string[]): Info {
    validateKey("name", info.name);
    validateLabels(info.name, info.labels);
    return this.opts.store.write((tx) => tx.updateInfo(info, fieldpaths));
  }

  /**
   * Infos matching any of `filters` (containerd filter syntax; none = all), read in one
   * transaction. InvalidArgument for a filter that does not parse.
   */
  list(filters: string[]): Info[] {
    return [...this.listPages(filters, 1000)].flat();
  }

  /**
   * {@link list} in pages of at most `size` snapshots read at a time, in key order; the
   * filters are parsed before the first page (InvalidArgument). Each page is its own read,
   * so a snapshot committed or removed meanwhile may be listed before or after the change
   * (containerd's GC, the main caller, acts on the next round).
   *
   * `maxBytes` bounds what one page holds: pages start at 4 snapshots (labels are at most
   * 64 KiB a snapshot) and each next page is sized from the bytes per snapshot seen so far to
   * hold about `maxBytes` (growing at most 4× a page, never past `size`, at least one), so
   * a List of snapshots with large labels holds about `maxBytes`, not `size` × 64 KiB.
   */
  *listPages(filters: string[], size: number, maxBytes = Number.POSITIVE_INFINITY): Generator<Info[]> {
    const filter = parseFilters(filters);
    for (let after = "", limit = Number.isFinite(maxBytes) ? Math.min(size, 4) : size; ; ) {
      const page = this.opts.store.read((tx) => tx.walkPage(after, limit));
      if (page.length === 0) return;
      after = (page[page.length - 1] as Info).name;
      const full = page.length === limit;
      const bytes = page.reduce((n, i) => n + infoBytes(i), 0);
      limit = Math.max(1, Math.min(size, limit * 4, Math.floor((page.length * maxBytes) / Math.max(1, bytes))));
      yield page.filter((i) => filter.match(snapshotInfoAdaptor(i)));
      if (!full) return;
    }
  }

  /**
   * Usage of a snapshot: measured on disk for an active one, the value recorded at Commit
   * otherwise. NotFound when missing.
   */
  async usage(key: string, signal?: AbortSignal): Promise<Usage> {
    validateKey("key", key);
    const { id, info, usage } = this.opts.store.read((tx) => tx.getInfo(key));
    const digest = info.labels[Label.CRILayerDigest];
    if (info.kind === "committed" && this.opts.remote && digest && Label.NydusDataLayer in info.labels) {
      // A nydus data layer has nothing on disk but its blob cache (§3.4 Usage).
      return { size: usage.size + this.opts.remote.cacheUsage(digest), inodes: usage.inodes };
    }
    if (info.kind !== "active") return usage;
    const fs = this.paths.fs(id);
    return diskUsage(fs, { signal }).catch((e) => {
      throw isNotFound(e) ? lostDirectory(`snapshot ${JSON.stringify(key)}`, fs, "remove it and prepare it again", e) : e;
    });
  }

  /**
   * Removes every directory under `<root>/snapshots` whose id the database does not have
   * (left by a crash, an interrupted Remove, or a failed Prepare). Returns the names removed.
   */
  async cleanup(): Promise<string[]> {
    if (this.opts.remote) {
      // Unmount orphans' images while their directories still have the names they were mounted under.
      const ids = this.opts.store.read((tx) => tx.idMap());
      for (const name of readdirSync(this.snapshotsDir)) if (!ids.has(name) && !isTemp(name)) await this.unmountRemote(name);
    }
    const doomed = this.opts.store.write((tx) => {
      const ids = tx.idMap();
      const out: string[] = [];
      for (const name of readdirSync(this.snapshotsDir)) {
        if (ids.has(name)) continue;
        // A Remove whose metadata never committed (the process died in between): the snapshot
        // still exists, so its directory gets its name back — never deleted.
        if (name.startsWith("rm-") && ids.has(name.slice(3)) && !existsSync(join(this.snapshotsDir, name.slice(3)))) {
          renameSync(join(this.snapshotsDir, name), join(this.snapshotsDir, name.slice(3)));
          this.log.warn(`snapshot directory ${name} belongs to a snapshot that still exists (an interrupted Remove): renamed back`);
          continue;
        }
        const target = isTemp(name) ? name : `rm-${name}`;
        if (target !== name) renameSync(join(this.snapshotsDir, name), join(this.snapshotsDir, target));
        out.push(target);
      }
      return out;
    });
    for (const name of doomed) {
      await this.unmountRemote(name); // an `rm-<id>` left by an interrupted Remove
      await this.removeDir(join(this.snapshotsDir, name));
    }
    await this.opts.remote?.gc();
    return doomed;
  }

  private create(kind: Kind, key: string, parent: string, labels: Record<string, string>): Mount[] {
    validateKey("key", key);
    if (parent !== "") validateKey("parent", parent);
    validateLabels(key, labels);
    const td = mkdtempSync(join(this.snapshotsDir, "new-"));
    // Where the directory went inside the transaction: removed again when the COMMIT fails.
    let placed: string | undefined;
    try {
      const fsDir = join(td, "fs");
      mkdirSync(fsDir, { mode: 0o755 });
      chmodSync(fsDir, 0o755); // independent of the process umask
      if (kind === "active") {
        mkdirSync(join(td, "work"), { mode: 0o711 });
        chmodSync(join(td, "work"), 0o711);
      }
      const s = this.opts.store.write((tx) => {
        const snap = tx.createSnapshot(kind, key, parent, labels);
        if (snap.parentIds.length > 0) {
          // The new upper dir belongs to whoever owns the parent's root, as in overlay.
          const parentFs = this.paths.fs(snap.parentIds[0] as string);
          let st: ReturnType<typeof statSync>;
          try {
            st = statSync(parentFs);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
            throw lostDirectory(
              `parent snapshot ${JSON.stringify(parent)} of ${JSON.stringify(key)}`,
              parentFs,
              "remove it (and what was unpacked on it) and unpack it again",
              e,
            );
          }
          lchownSync(fsDir, st.uid, st.gid);
        }
        const target = join(this.snapshotsDir, snap.id);
        // The id is new, so a directory already there was left by a crash: reconcile.
        rmSync(target, { recursive: true, force: true });
        renameSync(td, target);
        placed = target;
        return snap;
      });
      placed = undefined; // committed: the directory is the snapshot's now
      return this.mountsOf(s, labels);
    } catch (e) {
      rmSync(td, { recursive: true, force: true });
      if (placed) rmSync(placed, { recursive: true, force: true });
      throw e;
    }
  }

  private mountsOf(s: Snapshot, labels: Record<string, string>): Mount[] {
    return nativeMounts(s, this.paths, { volatile: this.opts.volatileAlways === true || wantsVolatile(labels) });
  }

  private async removeDir(dir: string): Promise<void> {
    try {
      await this.opts.remote?.unmountUnder(dir);
      await rm(dir, { recursive: true, force: true });
    } catch (e) {
      this.log.warn(`failed to remove directory ${dir}; cleanup will retry`, e);
    }
  }
}
