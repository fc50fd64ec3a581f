// Wire-compatibility proof for rafsnap's own containerd API definitions
// (proto/containerd/**). Every expected byte string below is written by hand
// from the protobuf encoding rules and containerd's field numbers — nothing
// here is produced by @bufbuild/protobuf — so a wrong field number, wire type
// or scalar type in our .proto files makes these tests fail.
//
// Encoding rules used:
//   tag          = varint((field_number << 3) | wire_type)
//   wire type 0  = VARINT (int32/int64/enum/bool), 2 = LEN (string/bytes/
//                  message/packed), proto3 scalars equal to their default are
//                  not written
//   map<K,V> f=N = repeated LEN field N of an entry message {K key = 1; V value = 2;}
//   Timestamp    = { int64 seconds = 1; int32 nanos = 2; }
//   FieldMask    = { repeated string paths = 1; }

import { describe, expect, test } from "bun:test";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { FieldMaskSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { MountSchema } from "../../gen/containerd/types/mount_pb.ts";
import {
  CommitSnapshotRequestSchema,
  InfoSchema,
  Kind,
  ListSnapshotsRequestSchema,
  MountsResponseSchema,
  PrepareSnapshotRequestSchema,
  Snapshots,
  UpdateSnapshotRequestSchema,
  UsageResponseSchema,
} from "../../gen/containerd/services/snapshots/v1/snapshots_pb.ts";

// ---------------------------------------------------------------------------
// A deliberately tiny, independent encoder for the expected bytes.
// ---------------------------------------------------------------------------

const VARINT = 0;
const LEN = 2;

function varint(n: bigint | number): number[] {
  // Negative int64/int32 values are encoded as their 64-bit two's complement.
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

const tag = (field: number, wireType: number): number[] => varint((field << 3) | wireType);
const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];

/** LEN field whose payload is a string. */
const str = (field: number, s: string): number[] => len(field, utf8(s));
/** LEN field with an arbitrary payload (embedded message, map entry). */
function len(field: number, payload: number[]): number[] {
  return [...tag(field, LEN), ...varint(payload.length), ...payload];
}
/** VARINT field. */
const vint = (field: number, n: bigint | number): number[] => [...tag(field, VARINT), ...varint(n)];
/** One map<string,string> entry as field `field`. */
const mapEntry = (field: number, k: string, v: string): number[] => len(field, [...str(1, k), ...str(2, v)]);

const bytes = (...parts: number[][]): Uint8Array => new Uint8Array(parts.flat());

/** Encode with protobuf-es, compare with the hand-written bytes, and decode back. */
function expectWire<Desc extends DescMessage>(schema: Desc, msg: MessageShape<Desc>, expected: Uint8Array): void {
  const actual = toBinary(schema, msg);
  expect(hex(actual)).toBe(hex(expected));
  // Decoding the hand-written bytes (what containerd's Go code sends for the
  // same values, map entry order aside) must give back an equal message.
  const decoded = fromBinary(schema, expected);
  expect(equals(schema, decoded, msg)).toBe(true);
  expect(hex(toBinary(schema, decoded))).toBe(hex(expected));
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

// ---------------------------------------------------------------------------

describe("containerd wire format (hand-computed bytes)", () => {
  test("the tiny encoder itself follows the spec", () => {
    // Canonical examples from the protobuf encoding guide.
    expect(varint(150)).toEqual([0x96, 0x01]);
    expect(vint(1, 150)).toEqual([0x08, 0x96, 0x01]);
    expect(str(2, "testing")).toEqual([0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]);
    expect(varint(-1)).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });

  test("containerd.types.Mount, fully literal bytes", () => {
    const m = create(MountSchema, { type: "bind", source: "/s", target: "/t", options: ["ro", "rbind"] });
    // prettier-ignore
    // biome-ignore format: wire bytes grouped by field
    const expected = new Uint8Array([
      0x0a, 0x04, 0x62, 0x69, 0x6e, 0x64, // 1: type    = "bind"
      0x12, 0x02, 0x2f, 0x73,             // 2: source  = "/s"
      0x1a, 0x02, 0x2f, 0x74,             // 3: target  = "/t"
      0x22, 0x02, 0x72, 0x6f,             // 4: options = "ro"
      0x22, 0x05, 0x72, 0x62, 0x69, 0x6e, 0x64, // 4: options = "rbind" (repeated string is never packed)
    ]);
    expectWire(MountSchema, m, expected);
  });

  test("PrepareSnapshotRequest with labels", () => {
    const msg = create(PrepareSnapshotRequestSchema, {
      snapshotter: "rafsnap",
      key: "default/1/extract-123 sha256:abc",
      parent: "sha256:parent",
      labels: {
        "containerd.io/snapshot.ref": "sha256:abc",
        "containerd.io/snapshot/remote-ok": "true",
      },
    });
    const expected = bytes(
      str(1, "rafsnap"), // snapshotter = 1
      str(2, "default/1/extract-123 sha256:abc"), // key = 2
      str(3, "sha256:parent"), // parent = 3
      mapEntry(4, "containerd.io/snapshot.ref", "sha256:abc"), // labels = 4
      mapEntry(4, "containerd.io/snapshot/remote-ok", "true"),
    );
    expectWire(PrepareSnapshotRequestSchema, msg, expected);
    // For reference, a literal labels entry {"a": "b"}: tag 4/LEN, len 6, key=1 "a", value=2 "b".
    expect(mapEntry(4, "a", "b")).toEqual([0x22, 0x06, 0x0a, 0x01, 0x61, 0x12, 0x01, 0x62]);
  });

  test("MountsResponse with mounts", () => {
    const msg = create(MountsResponseSchema, {
      mounts: [
        {
          type: "overlay",
          source: "overlay",
          options: ["index=off", "lowerdir=/a:/b", "upperdir=/u", "workdir=/w"],
        },
        { type: "erofs", source: "/var/lib/rafsnap/blob", options: ["ro"] },
      ],
    });
    const mount1 = [
      ...str(1, "overlay"),
      ...str(2, "overlay"),
      // target (3) is "" and therefore absent
      ...str(4, "index=off"),
      ...str(4, "lowerdir=/a:/b"),
      ...str(4, "upperdir=/u"),
      ...str(4, "workdir=/w"),
    ];
    const mount2 = [...str(1, "erofs"), ...str(2, "/var/lib/rafsnap/blob"), ...str(4, "ro")];
    const expected = bytes(len(1, mount1), len(1, mount2)); // repeated Mount mounts = 1
    expectWire(MountsResponseSchema, msg, expected);
  });

  test("Info with kind, timestamps and labels", () => {
    const msg = create(InfoSchema, {
      name: "sha256:layer",
      parent: "sha256:base",
      kind: Kind.COMMITTED,
      createdAt: create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 123_456_789 }),
      updatedAt: create(TimestampSchema, { seconds: 1_700_000_123n, nanos: 0 }),
      labels: { "containerd.io/gc.root": "2024-01-01T00:00:00Z" },
    });
    const expected = bytes(
      str(1, "sha256:layer"), // name = 1
      str(2, "sha256:base"), // parent = 2
      vint(3, 3), // kind = 3, COMMITTED = 3
      len(4, [...vint(1, 1_700_000_000n), ...vint(2, 123_456_789)]), // created_at = 4
      len(5, [...vint(1, 1_700_000_123n)]), // updated_at = 5 (nanos 0 omitted)
      mapEntry(6, "containerd.io/gc.root", "2024-01-01T00:00:00Z"), // labels = 6
    );
    expectWire(InfoSchema, msg, expected);
    // Literal form of a tiny created_at: tag 4/LEN (0x22), len 2, seconds=1 -> 0x08 0x01.
    const tiny = create(InfoSchema, { createdAt: create(TimestampSchema, { seconds: 1n }) });
    expect(toBinary(InfoSchema, tiny)).toEqual(new Uint8Array([0x22, 0x02, 0x08, 0x01]));
  });

  test("Kind enum numbers", () => {
    expect([Kind.UNKNOWN, Kind.VIEW, Kind.ACTIVE, Kind.COMMITTED]).toEqual([0, 1, 2, 3]);
    const info = create(InfoSchema, { kind: Kind.ACTIVE });
    expect(toBinary(InfoSchema, info)).toEqual(new Uint8Array([0x18, 0x02]));
    // VIEW == 1
    expect(toBinary(InfoSchema, create(InfoSchema, { kind: Kind.VIEW }))).toEqual(new Uint8Array([0x18, 0x01]));
  });

  test("UpdateSnapshotRequest with info and field mask", () => {
    const msg = create(UpdateSnapshotRequestSchema, {
      snapshotter: "rafsnap",
      info: create(InfoSchema, {
        name: "sha256:layer",
        labels: { "containerd.io/gc.ref.content.l.0": "sha256:blob" },
      }),
      updateMask: create(FieldMaskSchema, { paths: ["labels.containerd.io/gc.ref.content.l.0"] }),
    });
    const info = [...str(1, "sha256:layer"), ...mapEntry(6, "containerd.io/gc.ref.content.l.0", "sha256:blob")];
    const expected = bytes(
      str(1, "rafsnap"), // snapshotter = 1
      len(2, info), // info = 2
      len(3, str(1, "labels.containerd.io/gc.ref.content.l.0")), // update_mask = 3 { paths = 1 }
    );
    expectWire(UpdateSnapshotRequestSchema, msg, expected);
  });

  test("CommitSnapshotRequest: name=2, key=3 (not swapped), labels=4, parent=5 (containerd >= 2.2)", () => {
    const msg = create(CommitSnapshotRequestSchema, {
      snapshotter: "rafsnap",
      name: "sha256:committed",
      key: "extract-1",
      labels: { k: "v" },
      parent: "sha256:p",
    });
    const expected = bytes(str(1, "rafsnap"), str(2, "sha256:committed"), str(3, "extract-1"), mapEntry(4, "k", "v"), str(5, "sha256:p"));
    expectWire(CommitSnapshotRequestSchema, msg, expected);
    // What containerd < 2.2 sends (no field 5) decodes with an empty parent.
    const old = fromBinary(CommitSnapshotRequestSchema, bytes(str(2, "n"), str(3, "k")));
    expect(old.parent).toBe("");
    expect(old.name).toBe("n");
    expect(old.key).toBe("k");
  });

  test("ListSnapshotsRequest filters = 2 (repeated string)", () => {
    const msg = create(ListSnapshotsRequestSchema, { snapshotter: "rafsnap", filters: ["parent==x", "kind==committed"] });
    expectWire(ListSnapshotsRequestSchema, msg, bytes(str(1, "rafsnap"), str(2, "parent==x"), str(2, "kind==committed")));
  });

  test("UsageResponse size/inodes are int64 varints (not zigzag, not fixed)", () => {
    const msg = create(UsageResponseSchema, { size: 5n * 1024n ** 4n, inodes: 70_000n });
    expectWire(UsageResponseSchema, msg, bytes(vint(1, 5n * 1024n ** 4n), vint(2, 70_000n)));
    // int64 -1 would be 10 bytes as plain varint (sint64 would be 1 byte).
    expect(toBinary(UsageResponseSchema, create(UsageResponseSchema, { size: -1n })).length).toBe(11);
  });
});

describe("containerd service descriptor (gRPC paths)", () => {
  test("service and method names match /containerd.services.snapshots.v1.Snapshots/<Method>", () => {
    expect(Snapshots.typeName).toBe("containerd.services.snapshots.v1.Snapshots");
    const methods = Snapshots.methods.map((m) => [m.name, m.methodKind, m.input.typeName, m.output.typeName]);
    const p = "containerd.services.snapshots.v1.";
    expect(methods).toEqual([
      ["Prepare", "unary", `${p}PrepareSnapshotRequest`, `${p}PrepareSnapshotResponse`],
      ["View", "unary", `${p}ViewSnapshotRequest`, `${p}ViewSnapshotResponse`],
      ["Mounts", "unary", `${p}MountsRequest`, `${p}MountsResponse`],
      ["Commit", "unary", `${p}CommitSnapshotRequest`, "google.protobuf.Empty"],
      ["Remove", "unary", `${p}RemoveSnapshotRequest`, "google.protobuf.Empty"],
      ["Stat", "unary", `${p}StatSnapshotRequest`, `${p}StatSnapshotResponse`],
      ["Update", "unary", `${p}UpdateSnapshotRequest`, `${p}UpdateSnapshotResponse`],
      ["List", "server_streaming", `${p}ListSnapshotsRequest`, `${p}ListSnapshotsResponse`],
      ["Usage", "unary", `${p}UsageRequest`, `${p}UsageResponse`],
      ["Cleanup", "unary", `${p}CleanupRequest`, "google.protobuf.Empty"],
    ]);
    expect(MountSchema.typeName).toBe("containerd.types.Mount");
  });
});
