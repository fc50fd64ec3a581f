import { join } from "node:path";
import type { Snapshot } from "../store/index.ts";

/** A mount as containerd's `types.Mount` carries it. */
export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** Paths of one snapshot directory under `<root>/snapshots/<id>/`. */
export interface SnapshotPaths {
  /** Upper directory / layer contents. */
  fs(id: string): string;
  /** Overlay work directory (active snapshots only). */
  work(id: string): string;
}

/** The layout `<snapshotsDir>/<id>/{fs,work}` that containerd's overlay snapshotter uses. */
export function snapshotPaths(snapshotsDir: string): SnapshotPaths {
  return {
    fs: (id) => join(snapshotsDir, id, "fs"),
    work: (id) => join(snapshotsDir, id, "work"),
  };
}

/**
 * The mounts of an active or view snapshot, shaped as containerd's overlay snapshotter
 * shapes them (docs/compat.md §3.3 "Native"):
 * - no parent: a bind of its own `fs`, `rw` for active and `ro` for a view, with `rbind`;
 * - a view of one parent: a read-only bind of the parent's `fs`;
 * - otherwise overlay: for active `workdir`, `upperdir`, then `volatile` if asked, then
 *   `lowerdir` with the parents nearest first; a view gets only `lowerdir`.
 */
export function nativeMounts(s: Snapshot, paths: SnapshotPaths, opts: { volatile: boolean }): Mount[] {
  if (s.parentIds.length === 0) {
    return [{ type: "bind", source: paths.fs(s.id), options: [s.kind === "active" ? "rw" : "ro", "rbind"] }];
  }
  if (s.kind !== "active" && s.parentIds.length === 1) {
    return [{ type: "bind", source: paths.fs(s.parentIds[0] as string), options: ["ro", "rbind"] }];
  }
  const options: string[] = [];
  if (s.kind === "active") {
    options.push(`workdir=${paths.work(s.id)}`, `upperdir=${paths.fs(s.id)}`);
    if (opts.volatile) options.push("volatile");
  }
  options.push(`lowerdir=${s.parentIds.map((id) => paths.fs(id)).join(":")}`);
  return [{ type: "overlay", source: "overlay", options }];
}

/** How remote (nydus) mounts are shaped, from `[snapshot]` settings and the daemon mode. */
export interface RemoteMountStyle {
  /** Return `fuse.nydus-overlayfs` mounts with `extraoption` (enable_nydus_overlayfs, daemon_mode none). */
  nydusOverlayfs: boolean;
  /** `nydus_overlayfs_path`: the mount type becomes `fuse.<this>`; "" means `nydus-overlayfs`. */
  overlayfsPath: string;
}

/**
 * The mounts of an active or view snapshot over a nydus image (docs/compat.md §3.3 "Remote"):
 * overlay with `volatile` first when asked, then for active `workdir`/`upperdir`, then
 * `lowerdir` = the RAFS mountpoint (plus, for a view, the view's own `fs`, as overlay needs
 * two lower layers without an upper). With `extra` (nydus-overlayfs style) the type is
 * `fuse.nydus-overlayfs` and the options end with `extraoption=<base64 JSON>`.
 */
export function remoteMounts(
  s: Snapshot,
  paths: SnapshotPaths,
  rafsMountpoint: string,
  opts: { volatile: boolean; style: RemoteMountStyle; extra?: { source: string; config: string; fs_version: string }; snapshotDir: string },
): Mount[] {
  const options: string[] = [];
  if (opts.volatile) options.push("volatile");
  const lower = [rafsMountpoint];
  if (s.kind === "active") options.push(`workdir=${paths.work(s.id)}`, `upperdir=${paths.fs(s.id)}`);
  else lower.push(paths.fs(s.id));
  options.push(`lowerdir=${lower.join(":")}`);
  if (opts.style.nydusOverlayfs && opts.extra) {
    const json = JSON.stringify({ source: opts.extra.source, config: opts.extra.config, snapshotdir: opts.snapshotDir, fs_version: opts.extra.fs_version });
    options.push(`extraoption=${Buffer.from(json).toString("base64")}`);
    return [{ type: `fuse.${opts.style.overlayfsPath || "nydus-overlayfs"}`, source: "overlay", options }];
  }
  return [{ type: "overlay", source: "overlay", options }];
}
