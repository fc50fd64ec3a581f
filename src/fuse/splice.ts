import { ptr } from "bun:ffi";
import { readFileSync } from "node:fs";
import type { ReaderSys } from "./sys.ts";

const F_SETPIPE_SZ = 1031;
const O_CLOEXEC = 0o2000000;
const EINTR = 4;
const EAGAIN = 11;
const ENOENT = 2;

/** `/proc/sys/fs/pipe-max-size` (what an unprivileged pipe may grow to); 1 MiB if unreadable. */
function pipeMaxSize(): number {
  try {
    return Number(readFileSync("/proc/sys/fs/pipe-max-size", "utf8").trim()) || 1 << 20;
  } catch {
    return 1 << 20;
  }
}

/** Outcome of {@link FuseSplicer.reply}. */
export const SpliceResult = {
  /** The reply reached the kernel (or the kernel no longer wanted it: an interrupted request). */
  SENT: 0,
  /** Nothing was sent (the file gave fewer bytes, or an error): answer another way. */
  DECLINED: 1,
  /** `/dev/fuse` refused the spliced reply: answer another way and stop splicing. */
  BROKEN: 2,
} as const;

/**
 * Answers FUSE READ requests with data spliced from a file: the reply header is written into
 * a private pipe, the file's bytes are spliced after it (page-cache pages are referenced, not
 * copied), and the pipe is spliced into `/dev/fuse` in one call — one copy of the data (into
 * the reader's pages) instead of two with pread + write. One per reader thread.
 */
export class FuseSplicer {
  private rd = -1;
  private wr = -1;
  private readonly fds = new Int32Array(2);
  private readonly off = new BigInt64Array(1);
  private readonly offPtr;
  private readonly head = new Uint8Array(16);
  private readonly headView = new DataView(this.head.buffer);
  private readonly headPtr;
  /** Pipe slots (pages) of the pipe: the header takes one, each data page one. */
  private slots = 16;

  /**
   * @param c libc ({@link readerSys})
   * @param fuseFd the `/dev/fuse` descriptor (or any descriptor a pipe can be spliced to)
   * @param maxReply the largest reply (header + data) the pipe should hold; the pipe may be
   *   smaller (`/proc/sys/fs/pipe-max-size`), then longer replies do not {@link fits}
   */
  constructor(
    private readonly c: ReaderSys,
    private readonly fuseFd: number,
    private readonly maxReply: number,
  ) {
    this.offPtr = ptr(this.off);
    this.headPtr = ptr(this.head);
    this.open();
  }

  private errno(): number {
    return this.c.errno();
  }

  /** A fresh pipe, as big as the largest reply or as the system allows. */
  private open(): void {
    if (this.c.pipe2(ptr(this.fds), O_CLOEXEC) !== 0) throw new Error(`pipe2: errno ${this.errno()}`);
    this.rd = this.fds[0] as number;
    this.wr = this.fds[1] as number;
    let size = this.c.fcntl(this.wr, F_SETPIPE_SZ, this.maxReply + 4096);
    if (size < 0) size = this.c.fcntl(this.wr, F_SETPIPE_SZ, pipeMaxSize());
    if (size < 0) {
      const e = this.errno();
      this.close();
      throw new Error(`F_SETPIPE_SZ: errno ${e}`);
    }
    this.slots = Math.floor(size / 4096);
  }

  /** Closes the pipe (the splicer cannot be used afterwards). */
  close(): void {
    if (this.rd >= 0) this.c.close(this.rd);
    if (this.wr >= 0) this.c.close(this.wr);
    this.rd = this.wr = -1;
  }

  /** Drops whatever a failed reply left in the pipe by replacing it. */
  private reset(): void {
    this.close();
    this.open();
  }

  /** True when a reply of `length` bytes at `offset` fits the pipe. */
  fits(offset: number, length: number): boolean {
    const pages = Math.ceil((offset + length) / 4096) - Math.floor(offset / 4096);
    return 16 + length <= this.maxReply && pages + 1 <= this.slots;
  }

  /**
   * Replies to request `unique` (the 8 bytes of `fuse_in_header.unique`) with `length` bytes
   * of `fd` at `offset`; see {@link SpliceResult}.
   */
  reply(unique: Uint8Array, fd: number, offset: number, length: number): number {
    const total = 16 + length;
    if (!this.fits(offset, length)) return SpliceResult.DECLINED;
    this.headView.setUint32(0, total, true);
    this.headView.setInt32(4, 0, true);
    this.head.set(unique, 8);
    if (Number(this.c.write(this.wr, this.headPtr, 16)) !== 16) {
      this.reset();
      return SpliceResult.DECLINED;
    }
    this.off[0] = BigInt(offset);
    let moved = 0;
    while (moved < length) {
      const r = Number(this.c.splice(fd, this.offPtr, this.wr, null, length - moved, 0));
      if (r > 0) {
        moved += r;
        continue;
      }
      if (r < 0 && this.errno() === EINTR) continue;
      this.reset(); // EOF (a short file) or an error: the header must not be sent
      return SpliceResult.DECLINED;
    }
    for (;;) {
      const r = Number(this.c.splice(this.rd, null, this.fuseFd, null, total, 0));
      if (r === total) return SpliceResult.SENT;
      const e = r < 0 ? this.errno() : 0;
      if (r < 0 && (e === EINTR || e === EAGAIN)) continue;
      // ENOENT: the request was interrupted and the kernel forgot it. Anything else: the
      // kernel did not take the reply (if it did end the request, a second answer only gets
      // ENOENT), so the request is answered another way.
      this.reset();
      return e === ENOENT ? SpliceResult.SENT : SpliceResult.BROKEN;
    }
  }
}
