/**
 * The warm-read fast path of a {@link FuseSession}: READ requests for a registered file whose
 * covering spans are all marked ready are answered by the reader threads themselves (from the
 * file's cache file, straight onto /dev/fuse: fast-reader.ts) instead of taking the hop to the
 * main thread. This module holds the shared layout, the pure range logic and the main-thread
 * registry.
 *
 * Everything the readers need is shared memory, handed to them once per file over a
 * MessagePort they drain synchronously (`receiveMessageOnPort`) when a shared sequence
 * number says there is something new:
 *
 * - the span table: sorted, non-overlapping `[start, start + size)` ranges of the file (a
 *   blob's chunks in uncompressed order) and the ready bit of each; bytes outside every span
 *   are holes (zeros in the cache file) and need no bit;
 * - the ready bitmap, which its owner (BlobCache) sets with `Atomics.or` only after the span's
 *   bytes were written to the cache file, so a reader that sees a bit set reads those bytes;
 * - a control block ({@link Ctl}): state (OPEN/RETIRED) and the number of readers holding
 *   the descriptor, for the retire handshake; the end of the last read served (for the
 *   owner's sequential-reader detection).
 *
 * Descriptors: the registry opens its own read-only descriptor of the cache file for the
 * readers (a reopen through `/proc/self/fd`, so the very same file) and closes it only when
 * the file was retired AND no reader holds it: a reader increments `refs` and then checks the
 * state; {@link FastReadRegistry.unregister} sets the state and then reads `refs` (both
 * sequentially consistent), so either the reader sees RETIRED and backs off, or the registry
 * sees it inside and closes later. A descriptor is therefore never used after it was closed
 * (or reused), whatever the timing.
 */
import { closeSync, openSync } from "node:fs";
import { invalidArgument } from "../errdefs/index.ts";
import type { MessagePort } from "node:worker_threads";

/** Sorted spans of a file and the bit that says each is ready (all in shared memory). */
export interface SpanTable {
  /** Start offset of each span, ascending. */
  starts: Float64Array;
  /** Size of each span in bytes. */
  sizes: Float64Array;
  /** Bit index in the ready bitmap of each span; null when it is the span's own index. */
  bits: Uint32Array | null;
}

/** Int32 slots of a control block. */
export const Ctl = { STATE: 0, REFS: 1 } as const;
/** Control block states. */
export const CtlState = { OPEN: 0, RETIRED: 1 } as const;
/** Bytes of a control block: two Int32 slots, then the last served end as a Float64. */
export const CTL_BYTES = 16;
/** Byte offset of the Float64 "end of the last read served" (-1: none yet). */
export const CTL_LAST = 8;

/** What the readers get for one registered inode (a structured-clone-able message). */
export interface FastFileMessage {
  op: "add";
  ino: number;
  fd: number;
  size: number;
  starts: Float64Array;
  sizes: Float64Array;
  bits: Uint32Array | null;
  bitmap: Uint8Array;
  ctl: SharedArrayBuffer;
}

/** What the readers get when an inode is retired (its control block already says so). */
export interface FastDelMessage {
  op: "del";
  ino: number;
}

/** A file to register: its cache descriptor (reopened), size, spans and ready bitmap. */
export interface FastFile {
  /** An open descriptor of the cache file holding the file's bytes at their offsets. */
  fd: number;
  size: number;
  spans: SpanTable;
  /** The ready bitmap (over a SharedArrayBuffer); bit i is `bitmap[i >> 3] >> (i & 7) & 1`. */
  bitmap: Uint8Array;
}

/**
 * Builds a {@link SpanTable} in shared memory from spans sorted by `start` (a blob's chunks:
 * uncompressed offset, uncompressed size, CI index). Throws InvalidArgument when they are not
 * sorted or overlap (the range lookup would then miss spans).
 */
export function spanTable(spans: readonly { start: number; size: number; bit: number }[]): SpanTable {
  const n = spans.length;
  let prevEnd = 0;
  for (const [i, s] of spans.entries()) {
    if (!(s.start >= prevEnd) || !(s.size >= 0))
      throw invalidArgument(`span ${i} [${s.start}, +${s.size}) is not sorted after the previous one ending at ${prevEnd}`);
    prevEnd = s.start + s.size;
  }
  const starts = new Float64Array(new SharedArrayBuffer(Math.max(8, n * 8)), 0, n);
  const sizes = new Float64Array(new SharedArrayBuffer(Math.max(8, n * 8)), 0, n);
  let identity = true;
  spans.forEach((s, i) => {
    starts[i] = s.start;
    sizes[i] = s.size;
    if (s.bit !== i) identity = false;
  });
  let bits: Uint32Array | null = null;
  if (!identity) {
    bits = new Uint32Array(new SharedArrayBuffer(Math.max(4, n * 4)), 0, n);
    spans.forEach((s, i) => {
      (bits as Uint32Array)[i] = s.bit;
    });
  }
  return { starts, sizes, bits };
}

/**
 * Index range `[lo, hi)` of the spans overlapping `[offset, offset + length)` (empty, lo = hi,
 * when the range lies in a hole or `length` is 0).
 */
export function coveringSpans(t: SpanTable, offset: number, length: number): [number, number] {
  const end = offset + length;
  let lo = 0;
  let hi = t.starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((t.starts[mid] as number) + (t.sizes[mid] as number) <= offset) lo = mid + 1;
    else hi = mid;
  }
  let i = lo;
  if (length > 0) while (i < t.starts.length && (t.starts[i] as number) < end) i++;
  return [lo, i];
}

/** True when bit `i` of `bitmap` is set (an atomic load: the bitmap is shared). */
export function bitSet(bitmap: Uint8Array, i: number): boolean {
  return ((Atomics.load(bitmap, i >> 3) >> (i & 7)) & 1) === 1;
}

/** Sets bit `i` of `bitmap` atomically: the publication of a span written before. */
export function publishBit(bitmap: Uint8Array, i: number): void {
  Atomics.or(bitmap, i >> 3, 1 << (i & 7));
}

/** True when every span overlapping `[offset, offset + length)` is ready. */
export function rangeReady(t: SpanTable, bitmap: Uint8Array, offset: number, length: number): boolean {
  return readyEnd(t, bitmap, offset, offset + length) === offset + length;
}

/**
 * How far from `offset` (up to `limit`) the bytes are ready: the start of the first span
 * overlapping `[offset, limit)` that is not ready, else `limit`.
 */
export function readyEnd(t: SpanTable, bitmap: Uint8Array, offset: number, limit: number): number {
  const [lo, hi] = coveringSpans(t, offset, Math.max(0, limit - offset));
  for (let i = lo; i < hi; i++) {
    if (!bitSet(bitmap, t.bits ? (t.bits[i] as number) : i)) return Math.max(offset, t.starts[i] as number);
  }
  return limit;
}

/** A registered file as the main thread keeps it. */
interface Entry {
  fd: number;
  ctl: Int32Array;
  last: Float64Array;
}

/**
 * The main-thread side of the fast path: registers files with every reader thread and
 * retires them (see the module comment for the descriptor handshake). One per session.
 */
export class FastReadRegistry {
  private readonly entries = new Map<bigint, Entry>();
  /** Descriptors of retired files a reader still holds, closed when it lets go. */
  private readonly draining = new Set<Entry>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  /**
   * @param ports one port per reader thread (the other ends were given to the readers)
   * @param seq shared counter the readers watch; bumped after every message
   * @param served per-reader counters of reads served (one Float64 slot per reader)
   */
  constructor(
    private readonly ports: readonly MessagePort[],
    private readonly seq: Int32Array,
    private readonly served: Float64Array,
  ) {}

  /**
   * Serves `file` as inode `ino` from the reader threads (replacing an earlier registration
   * of `ino`). Returns false when the cache file cannot be reopened (reads then take the
   * main thread, as without a fast path).
   */
  register(ino: bigint, file: FastFile): boolean {
    if (this.closed) return false;
    this.unregister(ino);
    let fd: number;
    try {
      fd = openSync(`/proc/self/fd/${file.fd}`, "r");
    } catch {
      return false;
    }
    const sab = new SharedArrayBuffer(CTL_BYTES);
    const e: Entry = { fd, ctl: new Int32Array(sab, 0, 2), last: new Float64Array(sab, CTL_LAST, 1) };
    e.last[0] = -1;
    this.entries.set(ino, e);
    this.post({ op: "add", ino: Number(ino), fd, size: file.size, ...file.spans, bitmap: file.bitmap, ctl: sab });
    return true;
  }

  /** Stops serving `ino` from the readers; its descriptor is closed once no reader holds it. */
  unregister(ino: bigint): void {
    const e = this.entries.get(ino);
    if (!e) return;
    this.entries.delete(ino);
    Atomics.store(e.ctl, Ctl.STATE, CtlState.RETIRED);
    this.post({ op: "del", ino: Number(ino) });
    this.retire(e);
  }

  /** True when `ino` is registered. */
  has(ino: bigint): boolean {
    return this.entries.has(ino);
  }

  /**
   * End of the last read the readers served for `ino` (-1 when none), for the owner's
   * sequential-reader detection.
   */
  lastEnd(ino: bigint): number {
    return this.entries.get(ino)?.last[0] ?? -1;
  }

  /** Reads served by the reader threads so far (approximate while they run). */
  servedReads(): number {
    let n = 0;
    for (const v of this.served) n += v;
    return n;
  }

  /** Retires every file (the session is ending). Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const ino of [...this.entries.keys()]) this.unregister(ino);
    this.closed = true;
  }

  private post(msg: FastFileMessage | FastDelMessage): void {
    for (const p of this.ports) p.postMessage(msg);
    Atomics.add(this.seq, 0, 1);
  }

  private retire(e: Entry): void {
    if (Atomics.load(e.ctl, Ctl.REFS) === 0) {
      closeSync(e.fd);
      return;
    }
    // A reader holds this descriptor: close it when it lets go. (A reader thread terminated
    // while holding it never does; its descriptor then stays open, and is never reused.)
    this.draining.add(e);
    this.timer ??= setInterval(() => {
      for (const d of this.draining) {
        if (Atomics.load(d.ctl, Ctl.REFS) !== 0) continue;
        closeSync(d.fd);
        this.draining.delete(d);
      }
      if (this.draining.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }, 5);
    this.timer.unref?.();
  }
}
