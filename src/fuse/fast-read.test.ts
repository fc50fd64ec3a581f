// The fast path's pure parts (range → spans, ready checks, bit publication) and the
// registry ↔ reader handshake, on one thread (receiveMessageOnPort works within a thread).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MessageChannel } from "node:worker_threads";
import { bitSet, coveringSpans, FastReadRegistry, publishBit, rangeReady, readyEnd, spanTable } from "./fast-read.ts";
import { FastReadTable, preadFully } from "./fast-reader.ts";

// Three chunks with 4 KiB padding holes between them, as RAFS v6 lays them out:
// [0, 10000) hole [12288, 20288) hole [24576, 24676), file size 28672.
const CHUNKS = [
  { start: 0, size: 10000, bit: 0 },
  { start: 12288, size: 8000, bit: 1 },
  { start: 24576, size: 100, bit: 2 },
];
const SIZE = 28672;

function bitmap(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(Math.max(4, Math.ceil(n / 8))), 0, Math.ceil(n / 8));
}

describe("range → spans", () => {
  const t = spanTable(CHUNKS);

  test("the spans overlapping a range, holes included or not", () => {
    expect(coveringSpans(t, 0, 1)).toEqual([0, 1]);
    expect(coveringSpans(t, 9999, 2)).toEqual([0, 1]); // the end of chunk 0, then a hole
    expect(coveringSpans(t, 10000, 2288)).toEqual([1, 1]); // only the hole
    expect(coveringSpans(t, 10000, 2289)).toEqual([1, 2]); // and the first byte of chunk 1
    expect(coveringSpans(t, 0, SIZE)).toEqual([0, 3]);
    expect(coveringSpans(t, 24676, 100)).toEqual([3, 3]); // past the last chunk
    expect(coveringSpans(t, 5000, 0)).toEqual([0, 0]);
  });

  test("the bit of each span: the identity needs no table, anything else keeps one", () => {
    expect(t.bits).toBeNull();
    const shuffled = spanTable([
      { start: 0, size: 4096, bit: 2 },
      { start: 4096, size: 4096, bit: 0 },
      { start: 8192, size: 4096, bit: 1 },
    ]);
    expect([...(shuffled.bits ?? [])]).toEqual([2, 0, 1]);
    const b = bitmap(3);
    publishBit(b, 2);
    expect(rangeReady(shuffled, b, 0, 4096)).toBe(true);
    expect(rangeReady(shuffled, b, 0, 4097)).toBe(false);
    expect(t.starts.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(() => spanTable([CHUNKS[1] as (typeof CHUNKS)[number], CHUNKS[0] as (typeof CHUNKS)[number]])).toThrow("is not sorted");
    expect(() =>
      spanTable([
        { start: 0, size: 8192, bit: 0 },
        { start: 4096, size: 4096, bit: 1 },
      ]),
    ).toThrow("is not sorted");
  });

  test("a range is ready when every chunk it touches is; holes never need a bit", () => {
    const b = bitmap(3);
    expect(rangeReady(t, b, 10000, 2288)).toBe(true);
    expect(rangeReady(t, b, 0, 1)).toBe(false);
    publishBit(b, 0);
    expect(bitSet(b, 0)).toBe(true);
    expect(rangeReady(t, b, 0, 12288)).toBe(true);
    expect(rangeReady(t, b, 0, 12289)).toBe(false);
    expect(readyEnd(t, b, 0, SIZE)).toBe(12288);
    publishBit(b, 2);
    expect(readyEnd(t, b, 0, SIZE)).toBe(12288);
    publishBit(b, 1);
    expect(rangeReady(t, b, 0, SIZE)).toBe(true);
    expect(readyEnd(t, b, 100, SIZE)).toBe(SIZE);
    expect([bitSet(b, 0), bitSet(b, 1), bitSet(b, 2), bitSet(b, 3)]).toEqual([true, true, true, false]);
  });

  test("publication sets one bit, atomically, and never clears another", () => {
    const b = bitmap(16);
    for (const i of [9, 0, 15, 7, 8]) publishBit(b, i);
    expect([...b]).toEqual([0b10000001, 0b10000011]);
    publishBit(b, 9);
    expect([...b]).toEqual([0b10000001, 0b10000011]);
  });
});

describe("registry and reader", () => {
  let dir: string;
  let cacheFd: number;
  const data = new Uint8Array(SIZE).map((_, i) => (i * 31 + 7) & 0xff);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-fast-"));
    writeFileSync(join(dir, "cache"), data);
    cacheFd = openSync(join(dir, "cache"), "r+");
  });
  afterEach(() => {
    closeSync(cacheFd);
    rmSync(dir, { recursive: true, force: true });
  });

  function setup() {
    const ch = new MessageChannel();
    const seq = new Int32Array(new SharedArrayBuffer(4));
    const served = new Float64Array(new SharedArrayBuffer(8));
    const registry = new FastReadRegistry([ch.port1], seq, served);
    const added: number[] = [];
    const table = new FastReadTable(ch.port2, seq, (fd) => added.push(fd));
    const close = () => {
      registry.close();
      ch.port1.close();
      ch.port2.close();
    };
    return { registry, table, served, added, close };
  }

  /** A `send` that preads what it is asked for, as the reader thread does. */
  function reading(into: Uint8Array[]) {
    return (fd: number, offset: number, length: number) => {
      const out = new Uint8Array(length);
      if (!preadFully(fd, out, 0, length, offset)) return false;
      into.push(out);
      return true;
    };
  }

  test("a registered file's ready ranges are served from the cache file; anything else declines", () => {
    const { registry, table, added, close } = setup();
    const b = bitmap(3);
    expect(registry.register(5n, { fd: cacheFd, size: SIZE, spans: spanTable(CHUNKS), bitmap: b })).toBe(true);
    expect(table.has(5)).toBe(false); // not seen until refreshed
    table.refresh();
    expect(table.has(5)).toBe(true);
    expect(added.length).toBe(1);
    expect(added[0]).not.toBe(cacheFd); // the readers' own descriptor
    const got: Uint8Array[] = [];
    expect(table.serve(5, 0, 4096, 1 << 20, reading(got))).toBe(-1); // chunk 0 not ready
    publishBit(b, 0);
    expect(table.serve(5, 100, 4096, 1 << 20, reading(got))).toBe(4096);
    expect(got[0]).toEqual(data.subarray(100, 4196));
    expect(registry.lastEnd(5n)).toBe(4196);
    expect(table.nextMissing).toBe(false);
    expect(table.serve(5, 8192, 4096, 1 << 20, reading(got))).toBe(4096); // up to the hole
    expect(table.nextMissing).toBe(true); // chunk 1 starts at 12288 and is not ready
    expect(table.serve(5, 8192, 8192, 1 << 20, reading(got))).toBe(-1); // reaches chunk 1
    publishBit(b, 1);
    publishBit(b, 2);
    expect(table.serve(5, SIZE - 10, 4096, 1 << 20, reading(got))).toBe(10); // clamped at the end
    expect(got.at(-1)).toEqual(data.subarray(SIZE - 10));
    expect(table.serve(5, SIZE, 4096, 1 << 20, reading(got))).toBe(-1); // past the end
    expect(table.serve(5, 0, 8192, 4096, reading(got))).toBe(-1); // longer than the reply buffer
    expect(table.serve(6, 0, 10, 1 << 20, reading(got))).toBe(-1); // not registered
    expect(table.serve(5, 0, 10, 1 << 20, () => false)).toBe(-1); // send declined
    close();
  });

  test("retiring a file: the reader backs off, and its descriptor closes only once no reader holds it", async () => {
    const { registry, table, close } = setup();
    const open = () => readdirSync("/proc/self/fd").length;
    const before = open();
    const b = bitmap(3);
    for (const i of [0, 1, 2]) publishBit(b, i);
    registry.register(7n, { fd: cacheFd, size: SIZE, spans: spanTable(CHUNKS), bitmap: b });
    table.refresh();
    // Retired while a reader is inside: its descriptor must stay usable until it lets go.
    const served = table.serve(7, 0, 100, 1 << 20, (fd, offset, length) => {
      registry.unregister(7n);
      expect(registry.has(7n)).toBe(false);
      expect(fstatSync(fd).size).toBe(SIZE); // still open
      return preadFully(fd, new Uint8Array(length), 0, length, offset);
    });
    expect(served).toBe(100);
    expect(open()).toBe(before + 1);
    // Closed shortly after (the registry polls the reader count).
    await Bun.sleep(50);
    expect(open()).toBe(before);
    // Retired: the reader declines without touching the descriptor, even before the del message.
    expect(
      table.serve(7, 0, 100, 1 << 20, () => {
        throw new Error("a retired file was read");
      }),
    ).toBe(-1);
    close();
  });

  test("retiring a file nobody reads closes its descriptor at once; a new registration replaces the old", () => {
    const { registry, table, close } = setup();
    const open = () => readdirSync("/proc/self/fd").length;
    const before = open();
    const b = bitmap(3);
    publishBit(b, 0);
    registry.register(9n, { fd: cacheFd, size: SIZE, spans: spanTable(CHUNKS), bitmap: b });
    table.refresh();
    expect(table.serve(9, 0, 10, 1 << 20, () => true)).toBe(10);
    expect(open()).toBe(before + 1);
    registry.register(9n, { fd: cacheFd, size: 4096, spans: spanTable(CHUNKS.slice(0, 1)), bitmap: b });
    expect(open()).toBe(before + 1); // the first registration's descriptor was closed
    table.refresh();
    expect(table.serve(9, 4000, 4096, 1 << 20, () => true)).toBe(96); // the new size
    registry.close();
    expect(open()).toBe(before);
    expect(registry.register(10n, { fd: cacheFd, size: SIZE, spans: spanTable(CHUNKS), bitmap: b })).toBe(false);
    table.refresh();
    expect(table.has(9)).toBe(false);
    close();
  });
});
