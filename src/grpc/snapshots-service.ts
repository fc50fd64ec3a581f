import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import {
  ListSnapshotsResponseSchema,
  MountsResponseSchema,
  PrepareSnapshotResponseSchema,
  type Snapshots,
  StatSnapshotResponseSchema,
  UpdateSnapshotResponseSchema,
  UsageResponseSchema,
  ViewSnapshotResponseSchema,
} from "../../gen/containerd/services/snapshots/v1/snapshots_pb.ts";
import type { Metrics, SnapshotOperation } from "../metrics/index.ts";
import type { Snapshotter } from "../snapshot/index.ts";
import { infoFromPb, infoToPb, mountsToPb } from "./convert.ts";
import type { ServiceImpl } from "./server.ts";

/** Infos per List response message; containerd's own service sends batches of 100. */
const LIST_BATCH = 100;
/**
 * About how many bytes of names and labels one List message holds: with labels of up to
 * 64 KiB a snapshot, 100 of them would make each of many concurrent Lists hold 6 MiB.
 * Typical snapshots (a few hundred bytes of labels) still go 100 a message.
 */
const LIST_BYTES = 256 << 10;

/**
 * The `containerd.services.snapshots.v1.Snapshots` service over a {@link Snapshotter}:
 * proto ↔ domain conversion only. The `snapshotter` field of requests is ignored (a proxy
 * plugin serves whatever name containerd gave it). Errors propagate to the server, which
 * maps them to status codes in one place. With `metrics`, Prepare, Mounts, Remove and Cleanup
 * are timed into `snapshotter_snapshot_operation_elapsed_milliseconds` (failed calls too), as
 * nydus-snapshotter times them.
 */
export function snapshotsService(sn: Snapshotter, metrics?: Metrics): ServiceImpl<typeof Snapshots> {
  const timed = <T>(op: SnapshotOperation, fn: () => Promise<T>): Promise<T> => (metrics ? metrics.time(op, fn) : fn());
  return {
    prepare: async (req) =>
      create(PrepareSnapshotResponseSchema, { mounts: mountsToPb(await timed("PREPARE", () => sn.prepare(req.key, req.parent, req.labels))) }),
    view: async (req) => create(ViewSnapshotResponseSchema, { mounts: mountsToPb(await sn.view(req.key, req.parent, req.labels)) }),
    mounts: async (req) => create(MountsResponseSchema, { mounts: mountsToPb(await timed("MOUNTS", () => sn.mounts(req.key))) }),
    commit: async (req) => {
      await sn.commit(req.name, req.key, req.labels, req.parent);
      return create(EmptySchema);
    },
    remove: async (req) => {
      await timed("REMOVE", () => sn.remove(req.key));
      return create(EmptySchema);
    },
    stat: async (req) => create(StatSnapshotResponseSchema, { info: infoToPb(sn.stat(req.key)) }),
    update: async (req) => {
      const info = sn.update(infoFromPb(req.info), req.updateMask?.paths ?? []);
      return create(UpdateSnapshotResponseSchema, { info: infoToPb(info) });
    },
    list: async function* (req, ctx) {
      // Page by page: memory holds one page, whatever the number of snapshots (the server
      // asks for the next page only once the last one was sent).
      for (const page of sn.listPages(req.filters, LIST_BATCH, LIST_BYTES)) {
        if (ctx.signal.aborted) return;
        if (page.length > 0) yield create(ListSnapshotsResponseSchema, { info: page.map(infoToPb) });
      }
    },
    usage: async (req, ctx) => {
      const u = await sn.usage(req.key, ctx.signal);
      return create(UsageResponseSchema, { size: BigInt(u.size), inodes: BigInt(u.inodes) });
    },
    cleanup: async () => {
      await timed("CLEANUP", () => sn.cleanup());
      return create(EmptySchema);
    },
  };
}
