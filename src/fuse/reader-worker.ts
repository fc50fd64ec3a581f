// FUSE request reader, run as a Worker: blocking readSync on /dev/fuse (async reads on
// /dev/fuse never complete under Bun 1.4 — architecture.md §2), each request posted to the
// session on the main thread, which replies on the same fd. Ends when the mount goes away
// (ENODEV) and says so.
import { readSync } from "node:fs";

declare const self: Worker;

self.onmessage = (e: MessageEvent<{ fd: number; bufferSize: number }>) => {
  const { fd, bufferSize } = e.data;
  const buf = new Uint8Array(bufferSize);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "EIO";
      // EINTR/EAGAIN: retry; ENOENT: the request was interrupted before we read it.
      if (code === "EINTR" || code === "EAGAIN" || code === "ENOENT") continue;
      self.postMessage({ end: code });
      return;
    }
    const req = buf.slice(0, n);
    self.postMessage(req, [req.buffer]);
  }
};
