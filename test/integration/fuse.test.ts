// The FUSE session on a real /dev/fuse mount (root only): an in-memory read-only tree is
// served by worker threads + the main thread, and read with ordinary tools in subprocesses
// (a synchronous read from this thread would wait on itself).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { notFound, unavailable } from "../../src/errdefs/index.ts";
import type { Attr, DirEntry, ReadonlyFs } from "../../src/fuse/index.ts";
import { umount } from "../../src/mount/index.ts";
import { run } from "../harness/process.ts";
import { mountTestFuse, type TestFuseMount } from "../support/fuse-mount.ts";

const isRoot = process.getuid?.() === 0;
const BIG = 3 * 1024 * 1024 + 123;
const big = new Uint8Array(BIG).map((_, i) => (i * 7 + (i >> 12)) & 0xff);
const hello = new TextEncoder().encode("hello from fuse\n");

interface Node {
  attr: Attr;
  data?: Uint8Array;
  target?: string;
  children?: Map<string, bigint>;
}

function memFs(): ReadonlyFs & { reads: number } {
  const n = (ino: bigint, mode: number, size: number): Attr => ({ ino, mode, size, nlink: 1, uid: 0, gid: 0, mtime: 1_700_000_000 });
  const nodes = new Map<bigint, Node>([
    [
      1n,
      {
        attr: n(1n, 0o040755, 0),
        children: new Map([
          ["hello", 2n],
          ["big", 3n],
          ["sub", 4n],
          ["link", 6n],
          ["broken", 7n],
        ]),
      },
    ],
    [2n, { attr: n(2n, 0o100644, hello.length), data: hello }],
    [3n, { attr: n(3n, 0o100444, BIG), data: big }],
    [4n, { attr: n(4n, 0o040700, 0), children: new Map([["x", 5n]]) }],
    [5n, { attr: n(5n, 0o100600, 1), data: new Uint8Array([0x78]) }],
    [6n, { attr: n(6n, 0o120777, 5), target: "hello" }],
    [7n, { attr: n(7n, 0o100644, 10) }], // reads fail: its data is "unavailable"
  ]);
  const get = (ino: bigint) => {
    const node = nodes.get(ino);
    if (!node) throw notFound(`inode ${ino}`);
    return node;
  };
  const fs = {
    reads: 0,
    lookup: (parent: bigint, name: string) => {
      const ino = get(parent).children?.get(name);
      return ino === undefined ? undefined : get(ino).attr;
    },
    getattr: (ino: bigint) => nodes.get(ino)?.attr,
    readdir: (ino: bigint): DirEntry[] =>
      [...(get(ino).children ?? [])].map(([name, child]) => ({ name, ino: child, type: (get(child).attr.mode >> 12) & 0xf })),
    read: async (ino: bigint, offset: number, size: number) => {
      fs.reads++;
      const node = get(ino);
      if (!node.data) throw unavailable(`inode ${ino}: backend down`);
      await Bun.sleep(0); // an asynchronous read, as a registry fetch would be
      return node.data.subarray(offset, offset + size);
    },
    readlink: (ino: bigint) => get(ino).target ?? "",
    totals: () => ({ blocks: Math.ceil(BIG / 4096) + 2, files: nodes.size }),
  };
  return fs;
}

describe.skipIf(!isRoot)("FUSE session", () => {
  let dir: string;
  let mnt: string;
  let fuse: TestFuseMount;
  const fs = memFs();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-fuse-"));
    mnt = join(dir, "mnt");
    mkdirSync(mnt);
    fuse = mountTestFuse(mnt, fs);
  });
  afterAll(async () => {
    await fuse?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("tree, attributes, symlinks", async () => {
    const ls = await run(["ls", "-1a", mnt]);
    expect(ls.stdout.split("\n").filter(Boolean).sort()).toEqual([".", "..", "big", "broken", "hello", "link", "sub"]);
    expect((await run(["stat", "-c", "%a %s %h %u", join(mnt, "big")])).stdout.trim()).toBe(`444 ${BIG} 1 0`);
    expect((await run(["stat", "-c", "%a", join(mnt, "sub")])).stdout.trim()).toBe("700");
    expect((await run(["readlink", join(mnt, "link")])).stdout.trim()).toBe("hello");
    expect((await run(["cat", join(mnt, "link")])).stdout).toBe("hello from fuse\n");
    expect((await run(["cat", join(mnt, "sub/x")])).stdout).toBe("x");
    expect((await run(["stat", join(mnt, "nope")])).code).not.toBe(0);
  });

  test("large reads return the exact bytes; errors become EIO; writes are refused", async () => {
    const sum = await run(["sha256sum", join(mnt, "big")]);
    expect(sum.stdout.split(" ")[0]).toBe(new Bun.CryptoHasher("sha256").update(big).digest("hex"));
    const part = await run(["sh", "-c", `dd if=${join(mnt, "big")} bs=4096 skip=300 count=3 status=none | sha256sum`]);
    expect(part.stdout.split(" ")[0]).toBe(new Bun.CryptoHasher("sha256").update(big.subarray(300 * 4096, 303 * 4096)).digest("hex"));
    const broken = await run(["cat", join(mnt, "broken")]);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toContain("Input/output error");
    const write = await run(["sh", "-c", `echo x > ${join(mnt, "hello")}`]);
    expect(write.code).not.toBe(0);
    expect(fs.reads).toBeGreaterThan(0);
  });

  test("unmounting ends the session", async () => {
    umount(mnt);
    await fuse.session.done;
    expect((await run(["ls", mnt])).stdout).toBe("");
  });
});
