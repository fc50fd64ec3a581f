/**
 * The remote-filesystem port: what the snapshotter asks of whoever mounts nydus images
 * (the daemon manager, wired in by the composition root). Keys are snapshot ids; `snapshotDir`
 * is `<root>/snapshots/<id>`, whose `fs/` holds the unpacked bootstrap layer.
 */
export interface RemoteFs {
  /**
   * Mounts the image whose bootstrap layer is meta snapshot `metaId` (labels: its labels,
   * with the image reference) unless it is mounted, waits until its daemon is RUNNING and
   * returns the RAFS mountpoint. `blobIds` are the blobs the image may read (its layers' and
   * declared reference blobs, see labels.ts `imageBlobIds`). InvalidArgument when the labels
   * lack an image reference, FailedPrecondition for a missing/invalid bootstrap, a bootstrap
   * naming a blob that is not the image's, or an instance the readiness check marked broken,
   * Unavailable when the daemon does not come up.
   */
  mount(metaId: string, snapshotDir: string, labels: Record<string, string>, blobIds: readonly string[]): Promise<string>;
  /**
   * The mountpoint of `metaId`'s instance once its daemon is RUNNING, or undefined when it
   * has no instance. Unavailable when the daemon is dead and the policy did not bring it back.
   */
  ready(metaId: string): Promise<string | undefined>;
  /** Unmounts `metaId`'s instance (and stops its dedicated daemon); nothing when none. */
  umount(metaId: string): Promise<void>;
  /** Bytes on disk of the blob cache of layer `digest` (`sha256:…`). */
  cacheUsage(digest: string): number;
  /**
   * For daemon_mode "none" / enable_nydus_overlayfs: the `extraoption` JSON fields besides
   * `snapshotdir` — the bootstrap path, the nydusd config (JSON text) and `fs_version`.
   */
  extraOption(metaId: string, snapshotDir: string, labels: Record<string, string>): Promise<{ source: string; config: string; fs_version: string }>;
  /**
   * Detaches every mount at or below `dir` (found in /proc/self/mountinfo): the safety net
   * before a snapshot directory is deleted, so `rm -rf` never walks into a mounted image.
   */
  unmountUnder(dir: string): Promise<void>;
  /** Blob cache GC (docs/compat.md §8); run at the end of Cleanup. */
  gc(): Promise<void>;
  /** True when `daemon_mode` is "none": never start daemons, always answer extraoption mounts. */
  readonly daemonless: boolean;
}
