import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, kindOf } from "../errdefs/index.ts";
import { BlobCache, blobCacheUsage, cacheFiles, removeBlobCache } from "./blob-cache.ts";

const ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-cache-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("chunks are stored at their offsets, marked ready, and survive a reopen once flushed", () => {
  const c = BlobCache.open(dir, ID, 3 * 4096 + 100, 3);
  expect(statSync(cacheFiles(dir, ID).data).size).toBe(3 * 4096 + 100);
  expect([c.has(0), c.has(1), c.has(2)]).toEqual([false, false, false]);
  c.put(1, 4096, new Uint8Array(4096).fill(7));
  expect(c.has(1)).toBe(true);
  expect(c.read(4090, 10)).toEqual(new Uint8Array([0, 0, 0, 0, 0, 0, 7, 7, 7, 7]));
  c.close();
  const again = BlobCache.open(dir, ID, 3 * 4096 + 100, 3);
  expect([again.has(0), again.has(1), again.has(2)]).toEqual([false, true, false]);
  expect(again.readyCount()).toBe(1);
  expect(again.read(3 * 4096 + 90, 100).length).toBe(10); // clamped at the end
  again.close();
  expect(blobCacheUsage(dir, ID)).toBeGreaterThanOrEqual(4096);
  removeBlobCache(dir, ID);
  expect(blobCacheUsage(dir, ID)).toBe(0);
});

test("a map of another chunk count or format is discarded, not trusted", () => {
  const c = BlobCache.open(dir, ID, 8192, 2);
  c.put(0, 0, new Uint8Array(10).fill(1));
  c.close();
  expect(BlobCache.open(dir, ID, 8192, 5).readyCount()).toBe(0);
  writeFileSync(cacheFiles(dir, ID).chunkMap, "garbage!garbage!\xff");
  expect(BlobCache.open(dir, ID, 8192, 5).readyCount()).toBe(0);
});

test("bad ids and out-of-range chunks are InvalidArgument", () => {
  let err: unknown;
  try {
    BlobCache.open(dir, "../x", 1, 1);
  } catch (e) {
    err = e;
  }
  expect(kindOf(err)).toBe(ErrorKind.InvalidArgument);
  const c = BlobCache.open(dir, ID, 100, 1);
  expect(() => c.put(0, 90, new Uint8Array(20))).toThrow("outside the blob");
  expect(() => c.put(3, 0, new Uint8Array(1))).toThrow("outside the blob");
  c.close();
});

test("the ready bitmap is shared memory, set only once the chunk's bytes are in the data file", () => {
  const c = BlobCache.open(dir, ID, 2 * 4096, 10);
  expect(c.bitmap.buffer).toBeInstanceOf(SharedArrayBuffer);
  expect(c.bitmap.length).toBe(2);
  const seen: number[] = [];
  // What another thread sees: the bit, then the bytes (read back through the data descriptor).
  c.put(9, 4096, new Uint8Array(4096).fill(5));
  if ((Atomics.load(c.bitmap, 1) >> 1) & 1) {
    const b = new Uint8Array(1);
    readSync(c.dataFd, b, 0, 1, 4096);
    seen.push(b[0] as number);
  }
  expect(seen).toEqual([5]);
  expect([...c.bitmap]).toEqual([0, 0b10]);
  c.close();
  expect([...BlobCache.open(dir, ID, 2 * 4096, 10).bitmap]).toEqual([0, 0b10]); // flushed on close
});
