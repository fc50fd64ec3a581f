// Metadata semantics of containerd's storage.MetaStore, on a real SQLite file (no root).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, kindOf } from "../errdefs/index.ts";
import { openDb } from "./db.ts";
import { MetaStore } from "./metastore.ts";
import { thrown } from "../../test/support/failure.ts";

let dir: string;
let ms: MetaStore;
let now: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-store-"));
  now = 1_700_000_000_000_000;
  ms = new MetaStore(openDb(join(dir, "rafsnap.db")), () => now++);
});
afterEach(() => {
  ms.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("MetaStore", () => {
  test("prepare, commit, chain of parents nearest first", () => {
    const a = ms.write((tx) => tx.createSnapshot("active", "a", "", { x: "1" }));
    expect(a).toEqual({ id: "1", kind: "active", parentIds: [] });
    ms.write((tx) => tx.commitActive("a", "A", { size: 10, inodes: 2 }, { y: "2" }));
    ms.write((tx) => tx.createSnapshot("active", "b", "A", {}));
    ms.write((tx) => tx.commitActive("b", "B", { size: 0, inodes: 1 }, {}));
    const c = ms.write((tx) => tx.createSnapshot("view", "c", "B", {}));
    expect(c.parentIds).toEqual(["2", "1"]);
    const info = ms.read((tx) => tx.getInfo("A"));
    expect(info.id).toBe("1");
    expect(info.info.kind).toBe("committed");
    expect(info.info.labels).toEqual({ y: "2" }); // replaced, not inherited
    expect(info.usage).toEqual({ size: 10, inodes: 2 });
    expect(ms.read((tx) => tx.getInfo("B")).info.parent).toBe("A");
    expect(kindOf(thrown(() => ms.read((tx) => tx.getInfo("a"))))).toBe(ErrorKind.NotFound);
  });

  test("errors carry containerd's kinds and name the key", () => {
    ms.write((tx) => tx.createSnapshot("active", "a", "", {}));
    const dup = thrown(() => ms.write((tx) => tx.createSnapshot("active", "a", "", {})));
    expect(kindOf(dup)).toBe(ErrorKind.AlreadyExists);
    expect(String(dup)).toContain('"a"');
    expect(kindOf(thrown(() => ms.write((tx) => tx.createSnapshot("active", "b", "nope", {}))))).toBe(ErrorKind.NotFound);
    expect(kindOf(thrown(() => ms.write((tx) => tx.createSnapshot("active", "b", "a", {}))))).toBe(ErrorKind.InvalidArgument);
    ms.write((tx) => tx.commitActive("a", "A", { size: 0, inodes: 0 }, {}));
    const again = thrown(() => ms.write((tx) => tx.commitActive("A", "A2", { size: 0, inodes: 0 }, {})));
    expect(kindOf(again)).toBe(ErrorKind.FailedPrecondition);
    expect(kindOf(thrown(() => ms.write((tx) => tx.commitActive("x", "A", { size: 0, inodes: 0 }, {}))))).toBe(ErrorKind.AlreadyExists);
    ms.write((tx) => tx.createSnapshot("active", "child", "A", {}));
    const rm = thrown(() => ms.write((tx) => tx.remove("A")));
    expect(kindOf(rm)).toBe(ErrorKind.FailedPrecondition);
    expect(String(rm)).toContain('"A"');
    expect(kindOf(thrown(() => ms.read((tx) => tx.getSnapshot("A"))))).toBe(ErrorKind.FailedPrecondition);
  });

  test("a failed transaction leaves nothing behind", () => {
    thrown(() =>
      ms.write((tx) => {
        tx.createSnapshot("active", "a", "", {});
        throw new Error("boom");
      }),
    );
    expect(ms.read((tx) => tx.walkPage("", 1000))).toEqual([]);
  });

  test("ids are never reused", () => {
    const a = ms.write((tx) => tx.createSnapshot("active", "a", "", {}));
    ms.write((tx) => tx.remove("a"));
    const b = ms.write((tx) => tx.createSnapshot("active", "a", "", {}));
    expect(Number(b.id)).toBeGreaterThan(Number(a.id));
  });

  test("update by field paths", () => {
    ms.write((tx) => tx.createSnapshot("active", "a", "", { keep: "1", drop: "2" }));
    const base = ms.read((tx) => tx.getInfo("a").info);
    const u1 = ms.write((tx) => tx.updateInfo({ ...base, labels: { drop: "", add: "3" } }, ["labels.drop", "labels.add"]));
    expect(u1.labels).toEqual({ keep: "1", add: "3" });
    expect(u1.updated).toBeGreaterThan(u1.created);
    expect(u1.created).toBe(base.created);
    const u2 = ms.write((tx) => tx.updateInfo({ ...base, labels: { only: "x" } }, []));
    expect(u2.labels).toEqual({ only: "x" });
    const u3 = ms.write((tx) => tx.updateInfo({ ...base, labels: { l: "y" } }, ["labels"]));
    expect(u3.labels).toEqual({ l: "y" });
    const bad = thrown(() => ms.write((tx) => tx.updateInfo({ ...base }, ["parent"])));
    expect(kindOf(bad)).toBe(ErrorKind.InvalidArgument);
    expect(kindOf(thrown(() => ms.write((tx) => tx.updateInfo({ ...base, name: "zz" }, []))))).toBe(ErrorKind.NotFound);
  });

  test("walkPage is ordered by name and idMap maps ids to keys", () => {
    for (const k of ["c", "a", "b"]) ms.write((tx) => tx.createSnapshot("active", k, "", {}));
    expect(ms.read((tx) => tx.walkPage("", 1000)).map((i) => i.name)).toEqual(["a", "b", "c"]);
    expect(Object.fromEntries(ms.read((tx) => tx.idMap()))).toEqual({ "1": "c", "2": "a", "3": "b" });
  });

  test("database file is WAL and reopening keeps the data", () => {
    ms.write((tx) => tx.createSnapshot("active", "a", "", {}));
    ms.close();
    ms = new MetaStore(openDb(join(dir, "rafsnap.db")), () => now++);
    expect(ms.read((tx) => tx.walkPage("", 1000)).map((i) => i.name)).toEqual(["a"]);
    expect(statSync(join(dir, "rafsnap.db-wal")).isFile()).toBe(true);
  });
});

describe("label totals", () => {
  test("labels of one snapshot are capped in all: an Update that would pass the cap is refused before anything is stored", () => {
    const big = "v".repeat(4000);
    ms.write((tx) => tx.createSnapshot("active", "a", "", {}));
    // 16 labels of ~4 KB fit (64 KiB); the 17th does not.
    for (let i = 0; i < 16; i++) ms.write((tx) => tx.updateInfo({ name: "a", labels: { [`k${i}`]: big } } as never, [`labels.k${i}`]));
    const before = ms.read((tx) => tx.getInfo("a")).info.labels;
    const err = thrown(() => ms.write((tx) => tx.updateInfo({ name: "a", labels: { k16: big } } as never, ["labels.k16"])));
    expect(kindOf(err)).toBe(ErrorKind.InvalidArgument);
    expect(String(err)).toContain('snapshot "a": its labels would hold');
    expect(String(err)).toContain("65536 allowed");
    expect(ms.read((tx) => tx.getInfo("a")).info.labels).toEqual(before);
    // Create and commit are held to the same total.
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, big]));
    expect(kindOf(thrown(() => ms.write((tx) => tx.createSnapshot("active", "b", "", many))))).toBe(ErrorKind.InvalidArgument);
    expect(kindOf(thrown(() => ms.write((tx) => tx.commitActive("a", "c", { size: 0, inodes: 0 }, many))))).toBe(ErrorKind.InvalidArgument);
    // Every List still works.
    expect(ms.read((tx) => tx.walkPage("", 1000)).map((i) => i.name)).toEqual(["a"]);
  });
});

test("walkPage reads snapshots in name order, a page at a time", () => {
  for (const k of ["e", "a", "d", "c", "b"]) ms.write((tx) => tx.createSnapshot("active", k, "", {}));
  const pages: string[][] = [];
  for (let after = ""; ; ) {
    const page = ms.read((tx) => tx.walkPage(after, 2));
    if (page.length === 0) break;
    pages.push(page.map((i) => i.name));
    after = page[page.length - 1]?.name as string;
  }
  expect(pages).toEqual([["a", "b"], ["c", "d"], ["e"]]);
});
