// FUSE request reader, run as a Worker: blocking readSync on /dev/fuse (async reads on
// /dev/fuse never complete under Bun 1.4 — docs/design.md §2). READ requests the fast path
// can serve (a registered file, every covering chunk ready: fast-read.ts) are answered here,
// spliced from the cache file (splice.ts) or, where splicing is not possible, with pread and
// write; every other request is posted to the session on the main thread, which replies.
// Ends when the mount goes away (ENODEV) and says so.
import { readSync, writeSync } from "node:fs";
import type { MessagePort } from "node:worker_threads";
import { FastReadTable, preadFully } from "./fast-reader.ts";
import { IN_HEADER, Op, OUT_HEADER } from "./protocol.ts";
import { FuseSplicer, SpliceResult } from "./splice.ts";
import { POSIX_FADV_SEQUENTIAL, type ReaderSys, readerSys } from "./sys.ts";

declare const self: Worker;

/** The session's start message (see FuseSession). */
interface Start {
  fd: number;
  bufferSize: number;
  /** This reader's index (its slot in `served`). */
  index: number;
  /** Fast path: the port registrations arrive on, the counter that says they did. */
  port?: MessagePort;
  seq?: Int32Array;
  /** Reads served here, one slot per reader. */
  served?: Float64Array;
}

/** Splice failures on the file side (while pread worked) before splicing is given up. */
const SPLICE_STRIKES = 3;

self.onmessage = (e: MessageEvent<Start>) => {
  const { fd, bufferSize, index, port, seq, served } = e.data;
  const buf = new Uint8Array(bufferSize);
  const view = new DataView(buf.buffer);
  const unique = buf.subarray(8, 16);
  const maxRead = bufferSize - 4096;
  let sys: ReaderSys | undefined;
  let splicer: FuseSplicer | undefined;
  let strikes = 0;
  if (port && seq) {
    try {
      sys = readerSys();
      splicer = new FuseSplicer(sys, fd, OUT_HEADER + maxRead);
    } catch (err) {
      self.postMessage({ warn: `fast reads without splice: ${(err as Error).message}` });
    }
  }
  // The readers' descriptor of each cache file is advised sequential access: twice the
  // kernel's read-ahead window for it, which keeps the disk further ahead of sequential
  // readers (measured: warm reads with the page cache dropped wait less for the disk).
  const advise = sys ? (file: number) => void sys?.posix_fadvise(file, 0, 0, POSIX_FADV_SEQUENTIAL) : undefined;
  const fast = port && seq ? new FastReadTable(port, seq, advise) : undefined;
  const stopSplicing = (why: string) => {
    self.postMessage({ warn: `${why}; fast reads go on with pread + write` });
    splicer?.close();
    splicer = undefined;
  };
  // pread + write: a reply buffer (fuse_out_header, then up to the largest read), on first use.
  let reply: Uint8Array | undefined;
  const byCopy = (file: number, offset: number, length: number): boolean => {
    reply ??= new Uint8Array(OUT_HEADER + maxRead);
    if (!preadFully(file, reply, OUT_HEADER, length, offset)) return false;
    const rv = new DataView(reply.buffer);
    rv.setUint32(0, OUT_HEADER + length, true);
    rv.setInt32(4, 0, true);
    reply.set(unique, 8);
    try {
      writeSync(fd, reply, 0, OUT_HEADER + length);
    } catch (err) {
      // ENOENT: the request was interrupted and the kernel forgot it. Anything else: the
      // kernel did not take the reply and the main thread answers (should the kernel have
      // ended the request after all, that second answer only gets ENOENT).
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return true;
      self.postMessage({ warn: `fast read reply failed: ${code ?? err}` });
      return false;
    }
    return true;
  };
  const send = (file: number, offset: number, length: number): boolean => {
    if (splicer?.fits(offset, length)) {
      const r = splicer.reply(unique, file, offset, length);
      if (r === SpliceResult.SENT) return true;
      if (r === SpliceResult.BROKEN) stopSplicing("/dev/fuse refused a spliced reply");
      else if (byCopy(file, offset, length)) {
        if (++strikes >= SPLICE_STRIKES) stopSplicing("the cache file cannot be spliced");
        return true;
      } else return false;
    }
    return byCopy(file, offset, length);
  };
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "EIO";
      // EINTR/EAGAIN: retry; ENOENT: the request was interrupted before we read it.
      if (code === "EINTR" || code === "EAGAIN" || code === "ENOENT") continue;
      splicer?.close();
      self.postMessage({ end: code });
      return;
    }
    if (fast && n >= IN_HEADER + 24 && view.getUint32(4, true) === Op.READ) {
      fast.refresh();
      const ino = view.getUint32(16, true) + view.getUint32(20, true) * 2 ** 32;
      if (fast.has(ino)) {
        const offset = view.getUint32(IN_HEADER + 8, true) + view.getUint32(IN_HEADER + 12, true) * 2 ** 32;
        const size = view.getUint32(IN_HEADER + 16, true);
        const got = fast.serve(ino, offset, size, maxRead, send);
        if (got >= 0) {
          if (served) served[index] = (served[index] as number) + 1;
          // The next bytes are not cached yet: tell the fs, which may read ahead.
          if (fast.nextMissing) self.postMessage({ fastRead: ino, offset, length: got });
          continue;
        }
      }
    }
    const req = buf.slice(0, n);
    self.postMessage(req, [req.buffer]);
  }
};
