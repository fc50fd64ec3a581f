import type { Micros } from "./clock.ts";

/** containerd's snapshot kinds, spelled as its filter adaptor spells them. */
export type Kind = "view" | "active" | "committed";

/** What containerd's `snapshots.Info` holds. */
export interface Info {
  /** Key of an active or view snapshot, or the name of a committed one. */
  name: string;
  /** Name of the parent (always committed), or "" for none. */
  parent: string;
  kind: Kind;
  labels: Record<string, string>;
  created: Micros;
  updated: Micros;
}

/** Disk usage of a snapshot's own layer: bytes allocated and distinct inodes. */
export interface Usage {
  size: number;
  inodes: number;
}

/** An active or view snapshot as the snapshotter needs it to build mounts. */
export interface Snapshot {
  /** Internal id: the directory name under `<root>/snapshots/`. */
  id: string;
  kind: Kind;
  /** Ids of the parent chain, nearest parent first. */
  parentIds: string[];
}
