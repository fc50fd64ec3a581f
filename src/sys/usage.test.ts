import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import {
  closeSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { diskUsage } from "./usage.ts";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "rafsnap-usage-"));
});
afterEach(() => {
  // GNU rm is far faster than rmSync on the 1000-level tree below.
  if (spawnSync(["rm", "-rf", root]).exitCode !== 0) rmSync(root, { recursive: true, force: true });
});

/** A fresh directory on /dev/shm when it is a tmpfs with room for 200k inodes. */
function fastTempDir(): string | undefined {
  try {
    const fs = statfsSync("/dev/shm");
    if (fs.type !== 0x01021994 || fs.ffree < 200_000) return undefined;
    return mkdtempSync("/dev/shm/rafsnap-usage-");
  } catch {
    return undefined;
  }
}

const blocksOf = (p: string) => lstatSync(p).blocks * 512;
const isRoot = process.getuid?.() === 0;

/** GNU du: allocated bytes and inode count, hard links once, symlinks not followed. */
function du(dir: string, ...flags: string[]): { size: number; inodes: number } {
  const run = (...args: string[]) => {
    const r = spawnSync(["du", "-s", ...flags, ...args, dir]);
    if (r.exitCode !== 0) throw new Error(r.stderr.toString());
    return Number(r.stdout.toString().split("\t")[0]);
  };
  return { size: run("-B1"), inodes: run("--inodes") };
}

describe("diskUsage", () => {
  test("an empty directory is one inode", async () => {
    expect(await diskUsage(root)).toEqual({ size: blocksOf(root), inodes: 1 });
  });

  test("sparse files count allocated blocks, not their length", async () => {
    const sparse = join(root, "sparse");
    const fd = openSync(sparse, "w");
    ftruncateSync(fd, 1 << 30);
    writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 1 << 20);
    closeSync(fd);
    const usage = await diskUsage(root);
    expect(usage.inodes).toBe(2);
    expect(usage.size).toBe(blocksOf(root) + blocksOf(sparse));
    expect(usage.size).toBeLessThan(1 << 24);
    expect(blocksOf(sparse)).toBeGreaterThanOrEqual(4096);
  });

  test("hard links count once", async () => {
    writeFileSync(join(root, "f"), Buffer.alloc(10000, 1));
    const before = await diskUsage(root);
    linkSync(join(root, "f"), join(root, "g"));
    mkdirSync(join(root, "d"));
    linkSync(join(root, "f"), join(root, "d", "h"));
    const after = await diskUsage(root);
    expect(after.inodes).toBe(before.inodes + 1); // only the new directory
    expect(after.size).toBe(before.size + blocksOf(join(root, "d")));
  });

  test("symlinks are counted as themselves and never followed", async () => {
    const outside = mkdtempSync(join(tmpdir(), "rafsnap-usage-outside-"));
    try {
      writeFileSync(join(outside, "big"), Buffer.alloc(1 << 20, 1));
      symlinkSync(outside, join(root, "to-dir"));
      symlinkSync(join(outside, "big"), join(root, "to-file"));
      symlinkSync("dangling-target", join(root, "dangling"));
      const usage = await diskUsage(root);
      expect(usage.inodes).toBe(4);
      expect(usage.size).toBeLessThan(1 << 20);
      // A symlink as the root is measured alone.
      expect((await diskUsage(join(root, "to-dir"))).inodes).toBe(1);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  test("nested directories, a file root, and agreement with GNU du", async () => {
    let dir = root;
    for (let depth = 0; depth < 5; depth++) {
      dir = join(dir, `d${depth}`);
      mkdirSync(dir);
      writeFileSync(join(dir, "file"), Buffer.alloc(3000 * (depth + 1), 7));
      linkSync(join(dir, "file"), join(dir, "link"));
      symlinkSync("file", join(dir, "sym"));
    }
    const usage = await diskUsage(root);
    expect(usage.inodes).toBe(1 + 5 * 3);
    expect(usage).toEqual(du(root));
    expect(await diskUsage(join(dir, "file"))).toEqual({ size: blocksOf(join(dir, "file")), inodes: 1 });
  });

  test("file names that are not UTF-8 are measured", async () => {
    const name = Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0xff, 0xfe, 0x41])]);
    writeFileSync(name, Buffer.alloc(8192, 1));
    const usage = await diskUsage(root);
    expect(usage.inodes).toBe(2);
    expect(usage.size).toBe(blocksOf(root) + lstatSync(name).blocks * 512);
  });

  test("deep trees do not use the stack", async () => {
    let dir = root;
    for (let depth = 0; depth < 1000; depth++) {
      dir = join(dir, "d");
      mkdirSync(dir);
    }
    expect((await diskUsage(root)).inodes).toBe(1001);
  });

  test("100k files", async () => {
    // Creating 100k files on a slow disk takes tens of seconds, on tmpfs under one: use
    // /dev/shm when it is a roomy tmpfs (no privilege needed), else the temp dir.
    const tree = fastTempDir() ?? join(root, "tree");
    mkdirSync(tree, { recursive: true });
    try {
      for (let d = 0; d < 100; d++) {
        const sub = join(tree, `dir${d}`);
        mkdirSync(sub);
        for (let f = 0; f < 1000; f++) closeSync(openSync(join(sub, `f${f}`), "w"));
      }
      const usage = await diskUsage(tree);
      expect(usage.inodes).toBe(1 + 100 + 100_000);
      expect(usage).toEqual(du(tree));
    } finally {
      spawnSync(["rm", "-rf", tree]);
    }
  }, 120_000);

  test("a missing root is NotFound", async () => {
    const err = await diskUsage(join(root, "missing")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RafsnapError);
    expect((err as RafsnapError).kind).toBe(ErrorKind.NotFound);
  });

  test("an aborted signal cancels the walk", async () => {
    mkdirSync(join(root, "d"));
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    const err = await diskUsage(root, { signal: controller.signal }).catch((e: unknown) => e);
    expect((err as RafsnapError).kind).toBe(ErrorKind.Canceled);
  });

  test.skipIf(!isRoot)("mounts are crossed by default and skipped with oneFileSystem", async () => {
    const mnt = join(root, "mnt");
    mkdirSync(mnt);
    expect(spawnSync(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt]).exitCode).toBe(0);
    try {
      writeFileSync(join(mnt, "a"), Buffer.alloc(100_000, 1));
      writeFileSync(join(mnt, "b"), Buffer.alloc(100_000, 1));
      writeFileSync(join(root, "c"), "c");
      // containerd counts the mounted tree (root, c, mnt's root, a, b).
      expect((await diskUsage(root)).inodes).toBe(5);
      // oneFileSystem: the mountpoint and everything in it are left out, like `du -x`.
      const local = await diskUsage(root, { oneFileSystem: true });
      expect(local.inodes).toBe(2);
      expect(local.size).toBe(blocksOf(root) + blocksOf(join(root, "c")));
    } finally {
      spawnSync(["umount", mnt]);
    }
  });
});
