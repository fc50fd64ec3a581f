import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, kindOf } from "../errdefs/index.ts";
import { BlobCache, type CachedChunk, ChunkState } from "./blob-cache.ts";
import { blobCacheUsage, cacheFiles, MAP_HEADER, removeBlobCache } from "./chunk-map.ts";

const ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-cache-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const chunk = (ciIndex: number, uncompressedOffset: number, uncompressedSize: number): CachedChunk => ({ ciIndex, uncompressedOffset, uncompressedSize });

/** Claims and writes `c` with `fill` bytes, returning the cache. */
function store(cache: BlobCache, c: CachedChunk, value: number): void {
  const { fill } = cache.claim([c]);
  if (!fill) throw new Error(`chunk ${c.ciIndex} was not claimable`);
  fill.write(c, new Uint8Array(c.uncompressedSize).fill(value));
  fill.end();
}

test("chunks are stored at their offsets, present, and survive a reopen once flushed", async () => {
  const c = BlobCache.open(dir, ID, 3 * 4096 + 100, 3);
  expect(statSync(cacheFiles(dir, ID).data).size).toBe(3 * 4096 + 100);
  expect([c.has(0), c.has(1), c.has(2)]).toEqual([false, false, false]);
  store(c, chunk(1, 4096, 4096), 7);
  expect(c.has(1)).toBe(true);
  expect(c.read(4090, 10)).toEqual(new Uint8Array([0, 0, 0, 0, 0, 0, 7, 7, 7, 7]));
  await c.close();
  const again = BlobCache.open(dir, ID, 3 * 4096 + 100, 3);
  expect([again.has(0), again.has(1), again.has(2)]).toEqual([false, true, false]);
  expect(again.readyCount()).toBe(1);
  expect(again.read(3 * 4096 + 90, 100).length).toBe(10); // clamped at the end
  await again.close();
  expect(blobCacheUsage(dir, ID)).toBeGreaterThanOrEqual(4096);
  removeBlobCache(dir, ID);
  expect(blobCacheUsage(dir, ID)).toBe(0);
});

test("a chunk goes absent → fetching → present; a second claimant waits instead of fetching", async () => {
  const c = BlobCache.open(dir, ID, 4 * 4096, 4);
  const a = chunk(0, 0, 4096);
  const b = chunk(1, 4096, 4096);
  const first = c.claim([a, b]);
  expect(first.fill?.chunks.map((x) => x.ciIndex)).toEqual([0, 1]);
  expect(c.state(0)).toBe(ChunkState.FETCHING);
  const second = c.claim([a, b, chunk(2, 8192, 4096)]);
  expect(second.fill?.chunks.map((x) => x.ciIndex)).toEqual([2]); // only the absent one
  expect(second.waits.length).toBe(2);
  let woke = 0;
  const waits = second.waits.map((w) => w.then(() => woke++));
  first.fill?.write(a, new Uint8Array(4096).fill(1));
  await Bun.sleep(0);
  expect(woke).toBe(1); // a's waiter wakes when a is written, not when the fill ends
  first.fill?.write(b, new Uint8Array(4096).fill(2));
  first.fill?.end();
  await Promise.all(waits);
  expect(c.state(1)).toBe(ChunkState.PRESENT);
  expect(c.claim([a, b]).fill).toBeUndefined();
  second.fill?.end();
  expect(c.state(2)).toBe(ChunkState.ABSENT); // ended without it
  await c.close();
});

test("a fill that ends with an error publishes nothing it did not write; waiters get the error", async () => {
  const c = BlobCache.open(dir, ID, 2 * 4096, 2);
  const a = chunk(0, 0, 4096);
  const b = chunk(1, 4096, 4096);
  const { fill } = c.claim([a, b]);
  const { waits } = c.claim([b]);
  fill?.write(a, new Uint8Array(4096).fill(3));
  fill?.end(new Error("digest mismatch"));
  await expect(waits[0] as Promise<void>).rejects.toThrow("digest mismatch");
  expect([c.state(0), c.state(1)]).toEqual([ChunkState.PRESENT, ChunkState.ABSENT]);
  // The next claimant fetches it again.
  const again = c.claim([b]).fill;
  expect(again?.chunks.length).toBe(1);
  again?.end();
  await c.close();
});

test("only the fill that claimed a chunk may publish it, with the chunk's size", async () => {
  const c = BlobCache.open(dir, ID, 2 * 4096, 2);
  const a = chunk(0, 0, 4096);
  const { fill } = c.claim([a]);
  expect(() => fill?.published([1])).toThrow("not claimed");
  expect(() => fill?.write(a, new Uint8Array(10))).toThrow("has 10 bytes");
  expect(c.has(0)).toBe(false);
  fill?.end();
  expect(() => fill?.published([0])).toThrow("not claimed"); // ended: no longer its own
  expect(c.has(0)).toBe(false);
  await c.close();
});

test("close waits for fills and leases before the descriptor goes; no new claims meanwhile", async () => {
  const c = BlobCache.open(dir, ID, 4096, 1);
  const a = chunk(0, 0, 4096);
  const { fill } = c.claim([a]);
  const lease = c.lease();
  let closed = false;
  const closing = c.close().then(() => (closed = true));
  expect(() => c.claim([a])).toThrow("closed");
  expect(() => c.lease()).toThrow("closed");
  // A decode thread still writing through the fill's descriptor: it is open.
  const fd = fill?.fd as number;
  expect(writeSync(fd, new Uint8Array(4096).fill(9), 0, 4096, 0)).toBe(4096);
  fill?.published([0]);
  fill?.end();
  await Bun.sleep(0);
  expect(closed).toBe(false); // the lease still holds it
  const b = new Uint8Array(1);
  readSync(lease.fd, b, 0, 1, 0);
  expect(b[0]).toBe(9);
  lease.release();
  await closing;
  expect(closed).toBe(true);
  expect(BlobCache.open(dir, ID, 4096, 1).has(0)).toBe(true); // flushed on close
});

test("the map on disk gets a chunk's bit only at a flush, after the data was synced", async () => {
  const c = BlobCache.open(dir, ID, 16 * 4096, 16, { flushEvery: 1000 });
  store(c, chunk(3, 3 * 4096, 4096), 4);
  const map = () => new Uint8Array(readFileSync(cacheFiles(dir, ID).chunkMap));
  // Written and present in memory, not yet on disk: a daemon killed now loses the chunk, and
  // the next one fetches it again instead of trusting bytes that may not be there.
  expect(c.has(3)).toBe(true);
  expect(map()[MAP_HEADER]).toBe(0);
  expect(BlobCache.open(dir, ID, 16 * 4096, 16).has(3)).toBe(false);
  c.flush();
  expect(map()[MAP_HEADER]).toBe(0b1000);
  await c.close();
});

test("a map of another chunk count, size or format is discarded, not trusted", async () => {
  const c = BlobCache.open(dir, ID, 8192, 2);
  store(c, chunk(0, 0, 10), 1);
  await c.close();
  expect(BlobCache.open(dir, ID, 8192, 5).readyCount()).toBe(0);
  writeFileSync(cacheFiles(dir, ID).chunkMap, "garbage!garbage!\xff");
  expect(BlobCache.open(dir, ID, 8192, 5).readyCount()).toBe(0);
  const d = BlobCache.open(dir, ID, 8192, 5);
  store(d, chunk(1, 4096, 10), 1);
  await d.close();
  writeFileSync(cacheFiles(dir, ID).chunkMap, readFileSync(cacheFiles(dir, ID).chunkMap).subarray(0, MAP_HEADER)); // cut short
  expect(BlobCache.open(dir, ID, 8192, 5).readyCount()).toBe(0);
});

test("a cache filled under another trust key starts empty; the same key keeps its chunks", async () => {
  const k1 = new Uint8Array(32).fill(1);
  const k2 = new Uint8Array(32).fill(2);
  const c = BlobCache.open(dir, ID, 8192, 2, { key: k1 });
  store(c, chunk(0, 0, 10), 1);
  await c.close();
  const same = BlobCache.open(dir, ID, 8192, 2, { key: k1 });
  expect(same.has(0)).toBe(true);
  await same.close();
  // Another image's expectations for this blob id: nothing it did not verify is served.
  const other = BlobCache.open(dir, ID, 8192, 2, { key: k2 });
  expect(other.readyCount()).toBe(0);
  await other.close();
  expect(BlobCache.open(dir, ID, 8192, 2, { key: k1 }).readyCount()).toBe(0);
});

test("bad ids and out-of-range chunks are InvalidArgument", async () => {
  let err: unknown;
  try {
    BlobCache.open(dir, "../x", 1, 1);
  } catch (e) {
    err = e;
  }
  expect(kindOf(err)).toBe(ErrorKind.InvalidArgument);
  const c = BlobCache.open(dir, ID, 100, 1);
  expect(() => c.claim([chunk(0, 90, 20)])).toThrow("outside the blob");
  expect(() => c.claim([chunk(3, 0, 1)])).toThrow("outside the blob");
  await c.close();
});

test("the ready bitmap is shared memory, set only once the chunk's bytes are in the data file", async () => {
  const c = BlobCache.open(dir, ID, 2 * 4096, 10);
  expect(c.bitmap.buffer).toBeInstanceOf(SharedArrayBuffer);
  expect(c.bitmap.length).toBe(2);
  const seen: number[] = [];
  store(c, chunk(9, 4096, 4096), 5);
  // What another thread sees: the bit, then the bytes (read back through the data descriptor).
  if ((Atomics.load(c.bitmap, 1) >> 1) & 1) {
    const b = new Uint8Array(1);
    readSync(c.dataFd, b, 0, 1, 4096);
    seen.push(b[0] as number);
  }
  expect(seen).toEqual([5]);
  expect([...c.bitmap]).toEqual([0, 0b10]);
  await c.close();
  expect([...BlobCache.open(dir, ID, 2 * 4096, 10).bitmap]).toEqual([0, 0b10]); // flushed on close
});
