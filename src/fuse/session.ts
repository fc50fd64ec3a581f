import { readSync, writeSync } from "node:fs";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import type { Logger } from "../log/index.ts";
import { Errno, errnoOf } from "./errno.ts";
import { FuseSplicer, SpliceResult } from "./splice.ts";
import { readerSys } from "./sys.ts";
import { FastReadRegistry } from "./fast-read.ts";
import type { FileRange, ReadonlyFs } from "./fs.ts";
import {
  decodeInHeader,
  encodeAttrOut,
  encodeDirents,
  encodeEntry,
  encodeInitOut,
  encodeOpenOut,
  encodeReply,
  encodeStatfs,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  IN_HEADER,
  InitFlag,
  Op,
  OUT_HEADER,
} from "./protocol.ts";
import { workerUrl } from "../sys/index.ts";

/** Options of {@link FuseSession.start}. */
export interface SessionOptions {
  /** Reader threads (each blocks in read(2) on /dev/fuse); default 2. */
  workers?: number;
  /** Largest read the kernel may send, in 4 KiB pages (MAX_PAGES); default 256 (1 MiB). */
  maxPages?: number;
  /** Seconds the kernel may cache entries and attributes (the content never changes). */
  ttlSeconds?: number;
  logger: Logger;
  /** The reader worker module; the default resolves next to this file. */
  workerUrl?: string | URL;
  /**
   * Let the reader threads answer reads of ready ranges themselves (`ReadonlyFs.attachFastRead`,
   * src/fuse/fast-read.ts); default true when the fs supports it.
   */
  fastRead?: boolean;
}

/** What a reader thread posts: a request for the main thread, or a note. */
type ReaderMessage = Uint8Array | { end: string } | { warn: string } | { fastRead: number; offset: number; length: number };

const DOT_ENTRIES = (self: bigint, parent: bigint) => [
  { name: ".", ino: self, type: 4 },
  { name: "..", ino: parent, type: 4 },
];

/**
 * Serves a {@link ReadonlyFs} on an open `/dev/fuse` descriptor that is already mounted:
 * worker threads read requests, the main thread answers them (asynchronous reads included)
 * by writing replies to the same descriptor — except reads the fast path serves: when the fs
 * registers files with {@link FastReadRegistry} (`attachFastRead`), the reader threads answer
 * reads of their ready ranges themselves. Every write-type request gets EROFS.
 * {@link FuseSession.done} resolves when the kernel ends the session (unmount).
 */
export class FuseSession {
  readonly done: Promise<void>;
  private readonly workers: Worker[] = [];
  private readonly ttl: number;
  private readonly maxPages: number;
  private readonly log: Logger;
  private readonly parents = new Map<bigint, bigint>();
  /** Splices the replies of {@link replyFromFile}; null when splicing is not possible. */
  private splicer: FuseSplicer | null | undefined;
  /** The fast path's registry, when enabled (the fs has `attachFastRead`). */
  readonly fastRead: FastReadRegistry | undefined;

  private constructor(
    private readonly fd: number,
    private readonly fs: ReadonlyFs,
    opts: SessionOptions,
  ) {
    this.ttl = opts.ttlSeconds ?? 3600;
    this.maxPages = opts.maxPages ?? 256;
    this.log = opts.logger.withTag("fuse");
    const n = opts.workers ?? 2;
    const url = opts.workerUrl ?? workerUrl(import.meta.url, "fuse", "reader-worker.ts");
    this.log.info(`serving with ${n} reader thread${n === 1 ? "" : "s"}`);
    let ended = 0;
    let resolve!: () => void;
    this.done = new Promise<void>((r) => {
      resolve = r;
    });
    const fast = (opts.fastRead ?? true) && typeof fs.attachFastRead === "function";
    const seq = new Int32Array(new SharedArrayBuffer(4));
    const served = new Float64Array(new SharedArrayBuffer(8 * n));
    const ports: MessagePort[] = [];
    for (let i = 0; i < n; i++) {
      const w = new Worker(url);
      w.onmessage = (e: MessageEvent<ReaderMessage>) => {
        const m = e.data;
        if (m instanceof Uint8Array) {
          this.dispatch(m);
        } else if ("fastRead" in m) {
          this.fs.readServedFast?.(BigInt(m.fastRead), m.offset, m.length);
        } else if ("warn" in m) {
          this.log.warn(m.warn);
        } else {
          this.log.debug(`reader ${i} ended: ${m.end}`);
          w.terminate();
          if (++ended === n) resolve();
        }
      };
      const bufferSize = this.maxPages * 4096 + 4096;
      if (fast) {
        const ch = new MessageChannel();
        ports.push(ch.port1);
        w.postMessage({ fd, bufferSize, index: i, port: ch.port2, seq, served }, [ch.port2]);
      } else {
        w.postMessage({ fd, bufferSize, index: i });
      }
      this.workers.push(w);
    }
    this.fastRead = fast ? new FastReadRegistry(ports, seq, served) : undefined;
    if (this.fastRead) fs.attachFastRead?.(this.fastRead);
  }

  /** Starts serving `fs` on the mounted FUSE descriptor `fd`. */
  static start(fd: number, fs: ReadonlyFs, opts: SessionOptions): FuseSession {
    return new FuseSession(fd, fs, opts);
  }

  /**
   * Asks the kernel to queue again the requests a previous daemon read but never answered
   * (FUSE_NOTIFY_RESEND, Linux ≥ 6.9), after this session took over its descriptor. Returns
   * false when the kernel does not support it.
   */
  notifyResend(): boolean {
    const NOTIFY_RESEND = 7;
    const msg = new Uint8Array(16);
    const v = new DataView(msg.buffer);
    v.setUint32(0, 16, true);
    v.setInt32(4, NOTIFY_RESEND, true); // a notification: error = code, unique = 0
    try {
      writeSync(this.fd, msg);
      return true;
    } catch (e) {
      this.log.warn("FUSE_NOTIFY_RESEND failed", e);
      return false;
    }
  }

  /** Stops the reader threads now (after an unmount they end by themselves). */
  stop(): void {
    this.splicer?.close();
    for (const w of this.workers) w.terminate();
    this.fastRead?.close();
  }

  private reply(unique: bigint, errno: number, body?: Uint8Array): void {
    try {
      writeSync(this.fd, encodeReply(unique, errno, body));
    } catch (e) {
      // ENOENT: the request was interrupted and the kernel forgot it; nothing to do.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn("reply failed", e);
    }
  }

  /**
   * Answers a read with `r.length` bytes of file `r.fd`: spliced (the pages are referenced,
   * not copied — src/fuse/splice.ts, the same as the readers' fast path), else read into the
   * reply buffer behind its header and written. A short file falls back to the copy, which
   * answers with what there is; a file that cannot be read answers EIO.
   */
  private replyFromFile(unique: bigint, r: FileRange): void {
    if (this.splicer === undefined) {
      try {
        this.splicer = new FuseSplicer(readerSys(), this.fd, OUT_HEADER + this.maxPages * 4096);
      } catch (e) {
        this.log.debug(`replies to cold reads are copied, not spliced: ${(e as Error).message}`);
        this.splicer = null;
      }
    }
    if (this.splicer?.fits(r.offset, r.length)) {
      const id = new Uint8Array(8);
      new DataView(id.buffer).setBigUint64(0, unique, true);
      const sent = this.splicer.reply(id, r.fd, r.offset, r.length);
      if (sent === SpliceResult.SENT) return;
      if (sent === SpliceResult.BROKEN) {
        this.log.warn("/dev/fuse refused a spliced reply; replies to cold reads are copied from now on");
        this.splicer.close();
        this.splicer = null;
      }
    }
    // Not zero-filled: every byte sent is read below.
    const frame = Buffer.allocUnsafe(OUT_HEADER + r.length);
    let n = 0;
    try {
      while (n < r.length) {
        const got = readSync(r.fd, frame, OUT_HEADER + n, r.length - n, r.offset + n);
        if (got <= 0) break;
        n += got;
      }
    } catch (e) {
      this.log.warn(`read of the cache file for a reply failed`, e);
      return this.reply(unique, Errno.EIO);
    }
    const v = new DataView(frame.buffer, frame.byteOffset, OUT_HEADER);
    v.setUint32(0, OUT_HEADER + n, true);
    v.setInt32(4, 0, true);
    v.setBigUint64(8, unique, true);
    try {
      writeSync(this.fd, frame, 0, OUT_HEADER + n);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn("reply failed", e);
    }
  }

  private dispatch(req: Uint8Array): void {
    const h = decodeInHeader(req);
    const body = req.subarray(IN_HEADER, h.len);
    const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
    try {
      switch (h.opcode) {
        case Op.INIT: {
          const minor = v.getUint32(4, true);
          const readahead = v.getUint32(8, true);
          const offered = v.getUint32(12, true);
          const want =
            InitFlag.ASYNC_READ | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.CACHE_SYMLINKS | (this.fs.directIo ? InitFlag.ASYNC_DIO : 0);
          this.reply(h.unique, 0, encodeInitOut(Math.min(minor, 36), readahead, offered & want, this.maxPages));
          return;
        }
        case Op.LOOKUP: {
          const name = new TextDecoder().decode(body.subarray(0, body.indexOf(0) >= 0 ? body.indexOf(0) : body.length));
          const a = this.fs.lookup(h.nodeid, name);
          if (!a) return this.reply(h.unique, Errno.ENOENT);
          if ((a.mode & 0o170000) === 0o040000) this.parents.set(a.ino, h.nodeid);
          return this.reply(h.unique, 0, encodeEntry(a, this.ttl));
        }
        case Op.GETATTR: {
          const a = this.fs.getattr(h.nodeid);
          return a ? this.reply(h.unique, 0, encodeAttrOut(a, this.ttl)) : this.reply(h.unique, Errno.ENOENT);
        }
        case Op.READLINK: {
          if (!this.fs.readlink) return this.reply(h.unique, Errno.EINVAL);
          return this.reply(h.unique, 0, new TextEncoder().encode(this.fs.readlink(h.nodeid)));
        }
        case Op.OPEN: {
          const flags = v.getUint32(0, true);
          if ((flags & 3) !== 0) return this.reply(h.unique, Errno.EROFS); // O_WRONLY / O_RDWR
          return this.reply(h.unique, 0, encodeOpenOut(0n, this.fs.directIo ? FOPEN_DIRECT_IO : FOPEN_KEEP_CACHE));
        }
        case Op.OPENDIR:
          return this.reply(h.unique, 0, encodeOpenOut(0n, 0));
        case Op.READ: {
          const offset = Number(v.getBigUint64(8, true));
          const size = v.getUint32(16, true);
          const fromFile = this.fs.readSource?.(h.nodeid, offset, size);
          (fromFile ?? Promise.resolve(this.fs.read(h.nodeid, offset, size))).then(
            (got) => {
              if (got instanceof Uint8Array) return this.reply(h.unique, 0, got);
              try {
                this.replyFromFile(h.unique, got);
              } finally {
                got.release?.();
              }
            },
            (err) => {
              // The filesystem logs its own read failures (once, where they happen); here only
              // at debug, with the errno the reader gets.
              this.log.debug(`read of inode ${h.nodeid} at ${offset}+${size} failed (errno ${errnoOf(err)})`);
              this.reply(h.unique, errnoOf(err));
            },
          );
          return;
        }
        case Op.READDIR: {
          const offset = Number(v.getBigUint64(8, true));
          const size = v.getUint32(16, true);
          const all = [...DOT_ENTRIES(h.nodeid, this.parents.get(h.nodeid) ?? 1n), ...this.fs.readdir(h.nodeid)];
          return this.reply(h.unique, 0, encodeDirents(all, offset, size));
        }
        case Op.STATFS: {
          const t = this.fs.totals?.() ?? { blocks: 0, files: 0 };
          return this.reply(h.unique, 0, encodeStatfs(t.blocks, t.files));
        }
        case Op.RELEASE:
        case Op.RELEASEDIR:
        case Op.FLUSH:
        case Op.FSYNC:
        case Op.FSYNCDIR:
        case Op.ACCESS:
        case Op.DESTROY:
          return this.reply(h.unique, 0);
        case Op.FORGET:
        case Op.BATCH_FORGET:
        case Op.INTERRUPT:
          return; // no reply expected
        case Op.SETATTR:
        case Op.WRITE:
        case Op.CREATE:
        case Op.SETXATTR:
          return this.reply(h.unique, Errno.EROFS);
        default:
          return this.reply(h.unique, Errno.ENOSYS);
      }
    } catch (err) {
      this.log.warn(`request ${h.opcode} on inode ${h.nodeid} failed`, err);
      this.reply(h.unique, errnoOf(err));
    }
  }
}
