// Runs one blocking fd-passing exchange (see fdpass.ts) off the main thread.
import { fdpassSys } from "./fdpass-sys.ts";

declare const self: Worker;

type Job =
  | { op: "receive"; path: string; timeoutMs: number }
  | { op: "serve"; path: string; fd: number; state: Uint8Array; timeoutMs: number }
  | { op: "send"; path: string; fd: number; state: Uint8Array }
  | { op: "fetch"; path: string; timeoutMs: number };

self.onmessage = (e: MessageEvent<Job>) => {
  const j = e.data;
  const sys = fdpassSys();
  const close: number[] = [];
  try {
    const readAll = (conn: number, ms: number) => {
      const parts: Uint8Array[] = [];
      let fd = -1;
      for (;;) {
        const r = sys.recvmsg(conn, 256 * 1024, 64, ms);
        for (const f of r.fds) {
          if (fd < 0) fd = f;
          else sys.close(f); // keep the first, as nydus-snapshotter does
        }
        if (r.data.length === 0) break;
        parts.push(r.data);
      }
      if (fd < 0) throw new Error("no file descriptor was passed");
      return { fd, state: Buffer.concat(parts) };
    };
    const writeAll = (conn: number, state: Uint8Array, fd: number) => {
      let sent = sys.sendmsg(conn, state, [fd]);
      while (sent < state.length) sent += sys.sendmsg(conn, state.subarray(sent), []);
    };
    if (j.op === "receive" || j.op === "serve") {
      const l = sys.listen(j.path);
      close.push(l);
      const conn = sys.accept(l, j.timeoutMs);
      if (conn < 0) throw new Error(`nobody connected to ${j.path} within ${j.timeoutMs} ms`);
      close.push(conn);
      if (j.op === "receive") self.postMessage({ ok: true, ...readAll(conn, j.timeoutMs) });
      else {
        writeAll(conn, j.state, j.fd);
        self.postMessage({ ok: true });
      }
      sys.unlinkPath(j.path);
    } else {
      const conn = sys.connect(j.path);
      close.push(conn);
      if (j.op === "send") {
        writeAll(conn, j.state, j.fd);
        self.postMessage({ ok: true });
      } else self.postMessage({ ok: true, ...readAll(conn, j.timeoutMs) });
    }
  } catch (err) {
    self.postMessage({ ok: false, message: (err as Error).message });
  } finally {
    for (const fd of close) sys.close(fd);
    sys.release();
  }
};
