import { describe, expect, test } from "bun:test";
import { nativeMounts, snapshotPaths } from "./mounts.ts";

const paths = snapshotPaths("/r/snapshots");

describe("nativeMounts (containerd overlay shapes)", () => {
  test("no parent: bind of its own fs, rw for active, ro for a view", () => {
    expect(nativeMounts({ id: "1", kind: "active", parentIds: [] }, paths, { volatile: true })).toEqual([
      { type: "bind", source: "/r/snapshots/1/fs", options: ["rw", "rbind"] },
    ]);
    expect(nativeMounts({ id: "1", kind: "view", parentIds: [] }, paths, { volatile: false })).toEqual([
      { type: "bind", source: "/r/snapshots/1/fs", options: ["ro", "rbind"] },
    ]);
  });

  test("a view of one parent binds the parent's fs read-only", () => {
    expect(nativeMounts({ id: "5", kind: "view", parentIds: ["3"] }, paths, { volatile: false })).toEqual([
      { type: "bind", source: "/r/snapshots/3/fs", options: ["ro", "rbind"] },
    ]);
  });

  test("active with parents: workdir, upperdir, volatile, lowerdir nearest first", () => {
    expect(nativeMounts({ id: "9", kind: "active", parentIds: ["8", "2"] }, paths, { volatile: true })).toEqual([
      {
        type: "overlay",
        source: "overlay",
        options: ["workdir=/r/snapshots/9/work", "upperdir=/r/snapshots/9/fs", "volatile", "lowerdir=/r/snapshots/8/fs:/r/snapshots/2/fs"],
      },
    ]);
  });

  test("a view of several parents is a lowerdir-only overlay; never volatile", () => {
    expect(nativeMounts({ id: "9", kind: "view", parentIds: ["8", "2"] }, paths, { volatile: true })).toEqual([
      { type: "overlay", source: "overlay", options: ["lowerdir=/r/snapshots/8/fs:/r/snapshots/2/fs"] },
    ]);
  });
});
