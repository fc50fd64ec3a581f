// Runs one blocking fd-passing exchange (see fdpass.ts) off the main thread.
import { fdpassSys } from "./fdpass-sys.ts";

declare const self: Worker;

type Job =
  | { op: "receive"; path: string; timeoutMs: number }
  | { op: "serve"; path: string; fd: number; state: Uint8Array; timeoutMs: number }
  | { op: "send"; path: string; fd: number; state: Uint8Array }
  | { op: "fetch"; path: string; timeoutMs: number };

self.onmessage = async (e: MessageEvent<Job>) => {
  const j = e.data;
  const sys = fdpassSys();
  const close: number[] = [];
  // The result is posted only after our sockets are closed: the main thread terminates this
  // worker as soon as it hears back, and a socket left open would never show its peer EOF.
  let result: object;
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
      self.postMessage({ listening: true });
      // Accept in short slices, yielding between them, so the "listening" message above is
      // delivered while we wait (a worker blocked in one long poll would hold it back).
      const deadline = Date.now() + j.timeoutMs;
      let conn = -1;
      while (conn < 0 && Date.now() < deadline) {
        conn = sys.accept(l, 20);
        if (conn < 0) await Bun.sleep(1);
      }
      if (conn < 0) throw new Error(`nobody connected to ${j.path} within ${j.timeoutMs} ms`);
      close.push(conn);
      if (j.op === "receive") result = { ok: true, ...readAll(conn, j.timeoutMs) };
      else {
        writeAll(conn, j.state, j.fd);
        result = { ok: true };
      }
      sys.unlinkPath(j.path);
    } else {
      const conn = sys.connect(j.path);
      close.push(conn);
      if (j.op === "send") {
        writeAll(conn, j.state, j.fd);
        result = { ok: true };
      } else result = { ok: true, ...readAll(conn, j.timeoutMs) };
    }
  } catch (err) {
    result = { ok: false, message: (err as Error).message };
  } finally {
    for (const fd of close) sys.close(fd);
    sys.release();
  }
  self.postMessage(result);
};
