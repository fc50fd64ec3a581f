// The reader-thread side of the fast path (the layout and the handshake: fast-read.ts).
import { readSync } from "node:fs";
import { type MessagePort, receiveMessageOnPort } from "node:worker_threads";
import { CTL_LAST, Ctl, CtlState, type FastDelMessage, type FastFileMessage, rangeReady, type SpanTable } from "./fast-read.ts";

/** A registered file as a reader thread keeps it. */
interface ReaderFile {
  fd: number;
  size: number;
  spans: SpanTable;
  bitmap: Uint8Array;
  ctl: Int32Array;
  last: Float64Array;
}

/** Sends a reply with `length` bytes of `fd` at `offset`; false when it did not go out. */
export type FastSend = (fd: number, offset: number, length: number) => boolean;

/**
 * The files registered with one reader thread, and the serving of a ready range. One per
 * reader thread.
 */
export class FastReadTable {
  private readonly files = new Map<number, ReaderFile>();
  private seen = 0;
  /** Set by {@link serve} when the bytes right after the range served are not ready yet. */
  nextMissing = false;

  /**
   * @param port where the registry posts registrations
   * @param seq the registry's shared counter, bumped after every message
   * @param onAdd called with the cache descriptor of each file registered (held: it is open)
   */
  constructor(
    private readonly port: MessagePort,
    private readonly seq: Int32Array,
    private readonly onAdd?: (fd: number) => void,
  ) {}

  /** Applies the registrations posted since the last call (cheap when there are none). */
  refresh(): void {
    const s = Atomics.load(this.seq, 0);
    if (s === this.seen) return;
    this.seen = s;
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
      const msg = m.message as FastFileMessage | FastDelMessage;
      if (msg.op === "del") {
        this.files.delete(msg.ino);
        continue;
      }
      const f: ReaderFile = {
        fd: msg.fd,
        size: msg.size,
        spans: { starts: msg.starts, sizes: msg.sizes, bits: msg.bits },
        bitmap: msg.bitmap,
        ctl: new Int32Array(msg.ctl, 0, 2),
        last: new Float64Array(msg.ctl, CTL_LAST, 1),
      };
      this.files.set(msg.ino, f);
      if (this.onAdd) this.hold(f, () => (this.onAdd as (fd: number) => void)(f.fd));
    }
  }

  /** Runs `use` with `f`'s descriptor held (see the handshake); false when `f` was retired. */
  // biome-ignore lint/suspicious/noConfusingVoidType: `use` may return nothing (counted as true)
  private hold(f: ReaderFile, use: () => boolean | void): boolean {
    Atomics.add(f.ctl, Ctl.REFS, 1);
    try {
      return Atomics.load(f.ctl, Ctl.STATE) === CtlState.OPEN && use() !== false;
    } finally {
      Atomics.sub(f.ctl, Ctl.REFS, 1);
    }
  }

  /** True when `ino` is registered here. */
  has(ino: number): boolean {
    return this.files.has(ino);
  }

  /**
   * Serves a read of `size` bytes at `offset` of `ino` when the whole range is ready: calls
   * `send(fd, offset, length)` (length clamped at the end of the file) while the cache
   * descriptor `fd` is held, and returns `length` when `send` says the reply went out. -1
   * declines (not registered, retired, not ready, at or past the end, longer than `max`, or
   * `send` declined): the main thread then answers, errors included.
   */
  serve(ino: number, offset: number, size: number, max: number, send: FastSend): number {
    this.nextMissing = false;
    const f = this.files.get(ino);
    if (!f) return -1;
    const length = Math.min(size, f.size - offset);
    if (!(length > 0) || length > max) return -1;
    if (!rangeReady(f.spans, f.bitmap, offset, length)) return -1;
    if (!this.hold(f, () => send(f.fd, offset, length))) {
      if (Atomics.load(f.ctl, Ctl.STATE) !== CtlState.OPEN) this.files.delete(ino);
      return -1;
    }
    const end = offset + length;
    f.last[0] = end;
    this.nextMissing = end < f.size && !rangeReady(f.spans, f.bitmap, end, 1);
    return length;
  }
}

/**
 * Reads exactly `length` bytes of `fd` at `offset` into `out` at `at`; false on a short read
 * or an error.
 */
export function preadFully(fd: number, out: Uint8Array, at: number, length: number, offset: number): boolean {
  let done = 0;
  try {
    while (done < length) {
      const r = readSync(fd, out, at + done, length - done, offset + done);
      if (r <= 0) return false;
      done += r;
    }
  } catch {
    return false;
  }
  return true;
}
