// The fast path on a real /dev/fuse mount (root only): a file registered with the session's
// reader threads is read with ordinary tools in subprocesses; ranges whose chunks are ready
// never reach the filesystem's read(), the others do, and retiring the file sends every read
// back to the main thread. The file is opened with FOPEN_DIRECT_IO (`directIo`).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../test/harness/process.ts";
import { mountTestFuse, type TestFuseMount } from "../../test/support/fuse-mount.ts";
import { type FastReadRegistry, publishBit, spanTable } from "./fast-read.ts";
import type { ReadonlyFs } from "./fs.ts";
import type { Attr } from "./protocol.ts";

const isRoot = process.getuid?.() === 0;
const CHUNK = 256 * 1024;
const CHUNKS = 8;
const SIZE = CHUNK * CHUNKS;
const content = new Uint8Array(SIZE).map((_, i) => (i * 7 + (i >> 12)) & 0xff);
const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

describe.skipIf(!isRoot)("FUSE session fast path", () => {
  let dir: string;
  let mnt: string;
  let cacheFd: number;
  let fuse: TestFuseMount;
  const bitmap = new Uint8Array(new SharedArrayBuffer(4), 0, 1);
  const mainReads: number[] = [];
  const reported: number[] = [];
  let fast: FastReadRegistry | undefined;

  const attr = (ino: bigint, mode: number, size: number): Attr => ({ ino, mode, size, nlink: 1, uid: 0, gid: 0, mtime: 0 });
  const fs: ReadonlyFs = {
    directIo: true,
    lookup: (parent, name) => (parent === 1n && name === "blob" ? attr(2n, 0o100444, SIZE) : undefined),
    getattr: (ino) => (ino === 1n ? attr(1n, 0o040555, 0) : ino === 2n ? attr(2n, 0o100444, SIZE) : undefined),
    readdir: () => [{ name: "blob", ino: 2n, type: 8 }],
    read(_ino, offset, size) {
      mainReads.push(offset);
      // The main thread "fetches": the chunks become ready as a side effect.
      for (let c = Math.floor(offset / CHUNK); c * CHUNK < Math.min(SIZE, offset + size); c++) publishBit(bitmap, c);
      const out = new Uint8Array(Math.max(0, Math.min(size, SIZE - offset)));
      readSync(cacheFd, out, 0, out.length, offset);
      return out;
    },
    attachFastRead(f) {
      fast = f;
      const spans = spanTable(Array.from({ length: CHUNKS }, (_, i) => ({ start: i * CHUNK, size: CHUNK, bit: i })));
      f.register(2n, { fd: cacheFd, size: SIZE, spans, bitmap });
    },
    readServedFast(_ino, offset, length) {
      reported.push(offset + length);
    },
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-fastfuse-"));
    writeFileSync(join(dir, "cache"), content);
    cacheFd = openSync(join(dir, "cache"), "r");
    mnt = join(dir, "mnt");
    mkdirSync(mnt);
    fuse = mountTestFuse(mnt, fs);
  });
  afterAll(async () => {
    await fuse?.stop();
    closeSync(cacheFd);
    rmSync(dir, { recursive: true, force: true });
  });

  const readRange = async (chunk: number, count: number) => {
    const r = await run(["sh", "-c", `dd if=${join(mnt, "blob")} bs=${CHUNK} skip=${chunk} count=${count} status=none | sha256sum`]);
    return r.stdout.split(" ")[0];
  };

  test("ready chunks are served by the reader threads, the others by read()", async () => {
    expect(fast).toBeDefined();
    publishBit(bitmap, 0);
    publishBit(bitmap, 1);
    expect(await readRange(0, 2)).toBe(sha(content.subarray(0, 2 * CHUNK)));
    expect(mainReads).toEqual([]);
    expect(fuse.session.fastRead?.servedReads()).toBeGreaterThan(0);
    // The read ending where chunk 2 (not ready) starts says so: the fs may read ahead.
    // (The report crosses from a reader thread to this one: on a busy machine it may land
    // a little after the read returned.)
    for (let i = 0; i < 100 && !reported.includes(2 * CHUNK); i++) await Bun.sleep(20);
    expect(reported).toContain(2 * CHUNK);
    expect(await readRange(2, 2)).toBe(sha(content.subarray(2 * CHUNK, 4 * CHUNK)));
    expect(mainReads.length).toBeGreaterThan(0);
    expect(mainReads.every((o) => o >= 2 * CHUNK && o < 4 * CHUNK)).toBe(true);
    // Direct I/O: no page cache of the file, so the same range again reaches the session —
    // now all ready, served by the readers.
    const before = mainReads.length;
    expect(await readRange(0, 4)).toBe(sha(content.subarray(0, 4 * CHUNK)));
    expect(mainReads.length).toBe(before);
  });

  test("a retired file's reads all go to the main thread", async () => {
    fast?.unregister(2n);
    const before = mainReads.length;
    expect(await readRange(0, 1)).toBe(sha(content.subarray(0, CHUNK)));
    expect(mainReads.length).toBeGreaterThan(before);
  });
});
