// A RemoteFs that mounts nothing (in the spirit of stargz-snapshotter's dummy filesystem): it
// records what the snapshotter asks of it, answers with a mountpoint path under the meta
// snapshot's directory, and fails on request. It stands in for the nydus side only in
// root-free tests of the snapshotter's remote logic; the real path is tested end to end.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { unavailable } from "../../src/errdefs/index.ts";
import { Label } from "../../src/labels/index.ts";
import type { RemoteFs } from "../../src/snapshot/index.ts";

/** One call the snapshotter made. */
export type RemoteCall =
  | { op: "mount"; metaId: string; blobIds: readonly string[]; imageRef: string | undefined }
  | { op: "ready"; metaId: string }
  | { op: "umount"; metaId: string }
  | { op: "extraOption"; metaId: string }
  | { op: "unmountUnder"; dir: string }
  | { op: "gc" };

/** The fake and its knobs. */
export interface FakeRemoteFs extends RemoteFs {
  calls: RemoteCall[];
  /** Instances mounted now: meta id → mountpoint. */
  mounted: Map<string, string>;
  /** The next `mount` throws this (once). */
  failNextMount?: Error;
  /** `cacheUsage` answers: layer digest → bytes. */
  cacheBytes: Map<string, number>;
}

/** A fresh fake; `daemonless` as `daemon_mode = "none"`. */
export function fakeRemoteFs(opts: { daemonless?: boolean } = {}): FakeRemoteFs {
  const fake: FakeRemoteFs = {
    calls: [],
    mounted: new Map(),
    cacheBytes: new Map(),
    daemonless: opts.daemonless ?? false,
    async mount(metaId, snapshotDir, labels, blobIds) {
      fake.calls.push({ op: "mount", metaId, blobIds, imageRef: labels[Label.CRIImageRef] });
      const err = fake.failNextMount;
      if (err) {
        fake.failNextMount = undefined;
        throw err;
      }
      const mnt = join(snapshotDir, "mnt");
      mkdirSync(mnt, { recursive: true });
      fake.mounted.set(metaId, mnt);
      return mnt;
    },
    async ready(metaId) {
      fake.calls.push({ op: "ready", metaId });
      return fake.mounted.get(metaId);
    },
    async umount(metaId) {
      fake.calls.push({ op: "umount", metaId });
      fake.mounted.delete(metaId);
    },
    cacheUsage(digest) {
      return fake.cacheBytes.get(digest) ?? 0;
    },
    async extraOption(metaId, snapshotDir) {
      fake.calls.push({ op: "extraOption", metaId });
      return { source: join(snapshotDir, "fs", "image", "image.boot"), config: '{"device":{}}', fs_version: "v6" };
    },
    async unmountUnder(dir) {
      fake.calls.push({ op: "unmountUnder", dir });
    },
    async gc() {
      fake.calls.push({ op: "gc" });
    },
  };
  return fake;
}

/** A daemon that does not come up, as the manager reports it. */
export const daemonDown = () => unavailable("nydusd for the image did not reach RUNNING (test)");
