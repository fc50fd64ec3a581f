import { invalidArgument } from "../errdefs/index.ts";

/** Waits `ms` milliseconds, or less when `signal` aborts first; never rejects. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** The default {@link Sleep}: a timer, cleared when `signal` aborts. */
export const timerSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/**
 * A token bucket limiting a byte rate (`fs_prefetch.bandwidth_rate`). The bucket holds one
 * second's worth of bytes and starts full, so up to `bytesPerSecond` bytes go at once after
 * a quiet second; beyond that, callers wait in the order they called. A request bigger than
 * the bucket is not refused and does not wait forever: it overdraws the bucket and waits as
 * long as its bytes take at the rate (later callers then wait for the debt too). In any T
 * seconds at most `bytesPerSecond` × (T + 1) bytes are granted.
 *
 * `bytesPerSecond` 0 means unlimited: {@link take} never waits. Negative, NaN or infinite
 * rates are InvalidArgument. `now` (ms, monotonic) and `sleep` are injectable for tests.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: Sleep = timerSleep,
  ) {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0)
      throw invalidArgument(`rate limit must be a non-negative number of bytes per second, got ${bytesPerSecond}`);
    this.tokens = bytesPerSecond;
    this.last = now();
  }

  /** True when the limiter never waits (rate 0). */
  get unlimited(): boolean {
    return this.bytesPerSecond === 0;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((t - this.last) * this.bytesPerSecond) / 1000);
    this.last = t;
  }

  /**
   * Takes `bytes` from the bucket, waiting until the rate allows them. Resolves true when the
   * caller may go on and use them; false when `signal` aborted first (already aborted, or
   * during the wait) — then nothing was taken. Never rejects for an abort, so a best-effort
   * loop can `if (!(await limiter.take(n, signal))) return;`. InvalidArgument (a rejection)
   * for a negative or non-finite `bytes`.
   */
  async take(bytes: number, signal?: AbortSignal): Promise<boolean> {
    if (!Number.isFinite(bytes) || bytes < 0) throw invalidArgument(`rate limiter: cannot take ${bytes} bytes`);
    if (signal?.aborted) return false;
    if (this.unlimited || bytes === 0) return true;
    this.refill();
    this.tokens -= bytes;
    if (this.tokens >= 0) return true;
    await this.sleep((-this.tokens / this.bytesPerSecond) * 1000, signal);
    if (signal?.aborted) {
      this.refill();
      this.tokens = Math.min(this.bytesPerSecond, this.tokens + bytes);
      return false;
    }
    return true;
  }
}
