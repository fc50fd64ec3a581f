import { describe, expect, test } from "bun:test";
import { ErrorKind } from "../errdefs/index.ts";
import { RateLimiter, timerSleep } from "./rate-limit.ts";

/** A fake clock whose sleeps advance it at once (and are recorded). */
function fakeClock() {
  const c = {
    t: 0,
    sleeps: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
  };
  return c;
}

describe("RateLimiter (token bucket, one second of burst)", () => {
  const MB = 1 << 20;

  test("a full bucket lets one second's worth through at once, then the rate applies", async () => {
    const c = fakeClock();
    const l = new RateLimiter(MB, c.now, c.sleep);
    expect(await l.take(MB)).toBe(true);
    expect(c.sleeps).toEqual([]);
    expect(await l.take(MB / 2)).toBe(true);
    expect(c.sleeps).toEqual([500]);
    // Time passing refills the bucket, but never beyond one second's worth.
    c.t += 10_000;
    await l.take(2 * MB);
    expect(c.sleeps).toEqual([500, 1000]);
  });

  test("a request bigger than the bucket waits in proportion to its size, not forever", async () => {
    const c = fakeClock();
    const l = new RateLimiter(1000, c.now, c.sleep);
    expect(await l.take(5000)).toBe(true);
    expect(c.sleeps).toEqual([4000]); // 1000 from the bucket, 4000 at 1000/s
    await l.take(500); // the debt is paid: half a second for 500 more
    expect(c.sleeps).toEqual([4000, 500]);
  });

  test("the long-run rate holds over many small takes", async () => {
    const c = fakeClock();
    const l = new RateLimiter(MB, c.now, c.sleep);
    for (let i = 0; i < 160; i++) await l.take(64 << 10); // 10 MiB
    // One second of burst, nine seconds at the rate.
    expect(c.t).toBeCloseTo(9000, 6);
  });

  test("concurrent callers wait in the order they called", async () => {
    // All three call at the same instant; their sleeps end when the clock says so.
    let t = 0;
    const waits: { until: number; wake: () => void }[] = [];
    const l = new RateLimiter(
      1000,
      () => t,
      (ms) => new Promise<void>((wake) => waits.push({ until: t + ms, wake })),
    );
    await l.take(1000); // empty the bucket
    const order: string[] = [];
    const all = Promise.all(["a", "b", "c"].map((n) => l.take(1000).then(() => order.push(n))));
    expect(waits.map((w) => w.until)).toEqual([1000, 2000, 3000]);
    for (const w of [...waits].sort((x, y) => x.until - y.until)) {
      t = w.until;
      w.wake();
      await Bun.sleep(0);
    }
    await all;
    expect(order).toEqual(["a", "b", "c"]);
  });

  test("an abort ends the wait with false and gives the bytes back", async () => {
    const c = fakeClock();
    const ac = new AbortController();
    const l = new RateLimiter(1000, c.now, async (ms) => {
      c.sleeps.push(ms);
      c.t += 100; // aborted a tenth of a second into the wait
      ac.abort();
    });
    await l.take(1000);
    expect(await l.take(2000, ac.signal)).toBe(false);
    expect(await l.take(1, ac.signal)).toBe(false); // already aborted: no wait at all
    expect(c.sleeps).toEqual([2000]);
    // The aborted 2000 bytes were returned: 100 ms refilled 100 bytes, so 100 go at once.
    expect(await l.take(100)).toBe(true);
    expect(c.sleeps).toEqual([2000]);
  });

  test("rate 0 is unlimited; bad rates and sizes are InvalidArgument", async () => {
    const c = fakeClock();
    const l = new RateLimiter(0, c.now, c.sleep);
    expect(l.unlimited).toBe(true);
    for (let i = 0; i < 10; i++) expect(await l.take(1 << 30)).toBe(true);
    expect(c.sleeps).toEqual([]);
    expect(() => new RateLimiter(-1)).toThrow(expect.objectContaining({ kind: ErrorKind.InvalidArgument }));
    expect(() => new RateLimiter(Number.NaN)).toThrow("non-negative");
    await expect(new RateLimiter(1000).take(-5)).rejects.toMatchObject({ kind: ErrorKind.InvalidArgument });
  });

  test("real timers: the bucket's burst, then about the rate; an abort cuts a wait short", async () => {
    const l = new RateLimiter(4 * MB);
    const t0 = performance.now();
    await l.take(4 * MB); // the burst: at once
    expect(performance.now() - t0).toBeLessThan(50);
    await l.take(MB); // a quarter of a second at 4 MiB/s
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(240);
    expect(waited).toBeLessThan(600);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    const t1 = performance.now();
    expect(await l.take(40 * MB, ac.signal)).toBe(false);
    expect(performance.now() - t1).toBeLessThan(500);
    // timerSleep with an aborted signal returns at once.
    const t2 = performance.now();
    await timerSleep(10_000, AbortSignal.abort());
    expect(performance.now() - t2).toBeLessThan(50);
  });
});
