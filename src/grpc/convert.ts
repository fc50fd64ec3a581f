import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { type Info as PbInfo, InfoSchema, Kind as PbKind } from "../../gen/containerd/services/snapshots/v1/snapshots_pb.ts";
import { type Mount as PbMount, MountSchema } from "../../gen/containerd/types/mount_pb.ts";
import type { Info, Kind, Micros, Mount } from "../snapshot/index.ts";
import { invalidArgument } from "../errdefs/index.ts";

const KIND_TO_PB: Record<Kind, PbKind> = { view: PbKind.VIEW, active: PbKind.ACTIVE, committed: PbKind.COMMITTED };

/** Microseconds since the epoch as a protobuf Timestamp. */
export function timestampOf(us: Micros): Timestamp {
  const seconds = Math.floor(us / 1_000_000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (us - seconds * 1_000_000) * 1000 });
}

/** A domain Info as containerd's `Info` message. */
export function infoToPb(i: Info): PbInfo {
  return create(InfoSchema, {
    name: i.name,
    parent: i.parent,
    kind: KIND_TO_PB[i.kind],
    createdAt: timestampOf(i.created),
    updatedAt: timestampOf(i.updated),
    labels: i.labels,
  });
}

/**
 * containerd's `Info` message as a domain Info, for Update, where only name and labels
 * matter (containerd ignores the rest too): a kind we do not know reads as "active", and
 * the times as 0. InvalidArgument when the request carries no info at all.
 */
export function infoFromPb(p: PbInfo | undefined): Info {
  if (!p) throw invalidArgument("update request carries no snapshot info");
  const kind = (Object.keys(KIND_TO_PB) as Kind[]).find((k) => KIND_TO_PB[k] === p.kind);
  return {
    name: p.name,
    parent: p.parent,
    kind: kind ?? "active",
    labels: { ...p.labels },
    created: 0,
    updated: 0,
  };
}

/** Domain mounts as containerd `types.Mount` messages. */
export function mountsToPb(ms: Mount[]): PbMount[] {
  return ms.map((m) => create(MountSchema, { type: m.type, source: m.source, target: m.target ?? "", options: m.options }));
}
