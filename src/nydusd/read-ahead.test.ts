import { describe, expect, test } from "bun:test";
import { readAheadBytes, type SequentialRun } from "./read-ahead.ts";

const MiB = 1 << 20;

describe("readAheadBytes", () => {
  test("the third read in a row reads ahead; the window is twice the run, 1 MiB at least, capped", () => {
    const run: SequentialRun = {};
    expect(readAheadBytes(run, 0, 128 << 10, -1, 32 * MiB)).toBe(0);
    expect(readAheadBytes(run, 128 << 10, 128 << 10, -1, 32 * MiB)).toBe(0);
    expect(readAheadBytes(run, 256 << 10, 128 << 10, -1, 32 * MiB)).toBe(MiB); // run of 384 KiB → 1 MiB floor
    expect(readAheadBytes(run, 8 * MiB, MiB, -1, 32 * MiB)).toBe(0); // a jump starts a new run
    let ahead = 0;
    for (let off = 9 * MiB; off < 40 * MiB; off += MiB) ahead = readAheadBytes(run, off, MiB, -1, 32 * MiB);
    expect(ahead).toBe(32 * MiB);
    expect(readAheadBytes(run, 40 * MiB, MiB, -1, 0)).toBe(0); // read-ahead off
  });
  test("lone reads of small files never read ahead; the fast path's reads count as the run's", () => {
    const run: SequentialRun = {};
    for (const off of [0, 50 * MiB, 3 * MiB, 90 * MiB]) expect(readAheadBytes(run, off, 4096, -1, 32 * MiB)).toBe(0);
    const fast: SequentialRun = {};
    expect(readAheadBytes(fast, 10 * MiB, MiB, 10 * MiB, 32 * MiB)).toBe(0);
    expect(readAheadBytes(fast, 12 * MiB, MiB, 12 * MiB, 32 * MiB)).toBe(6 * MiB); // served fast in between: a run of 3 MiB
  });
});
