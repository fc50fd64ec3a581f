import { FFIType, ptr } from "bun:ffi";
import { openLibc } from "../sys/index.ts";

/**
 * Blocking unix-socket calls with SCM_RIGHTS file-descriptor passing, through libc via
 * bun:ffi (Node's net module cannot pass descriptors). x86-64 and arm64 Linux layouts:
 * `sockaddr_un` 110 bytes, `msghdr` 56, `iovec` 16, `cmsghdr` header 16. Run these on a
 * worker thread (fdpass-worker.ts): accept and recv block.
 */
export function fdpassSys() {
  const {
    symbols: c,
    close: closeLib,
    errno,
  } = openLibc({
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    accept: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    sendmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
    recvmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    unlink: { args: [FFIType.ptr], returns: FFIType.i32 },
  });
  const fail = (what: string): never => {
    throw new Error(`${what}: errno ${errno()}`);
  };
  const addr = (path: string) => {
    const b = new Uint8Array(110);
    const p = new TextEncoder().encode(path);
    if (p.length > 107) throw new Error(`socket path ${path} is longer than 107 bytes`);
    new DataView(b.buffer).setUint16(0, 1, true); // AF_UNIX
    b.set(p, 2);
    return b;
  };
  const cstr = (s: string) => new TextEncoder().encode(`${s}\0`);

  /** Waits up to `ms` for `fd` to be readable (POLLIN); false on timeout. */
  const waitReadable = (fd: number, ms: number): boolean => {
    const pfd = new Uint8Array(8);
    const v = new DataView(pfd.buffer);
    v.setInt32(0, fd, true);
    v.setInt16(4, 1, true); // POLLIN
    for (;;) {
      const r = c.poll(ptr(pfd), 1, ms);
      if (r > 0) return true;
      if (r === 0) return false;
      if (errno() !== 4) fail("poll"); // EINTR: again
    }
  };

  return {
    close: (fd: number) => void c.close(fd),
    unlinkPath: (path: string) => void c.unlink(ptr(cstr(path))),
    /** A listening socket bound at `path` (an old socket file there is removed first). */
    listen(path: string): number {
      c.unlink(ptr(cstr(path)));
      const fd = c.socket(1, 1 | 0o2000000, 0); // AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC
      if (fd < 0) fail("socket");
      const a = addr(path);
      if (c.bind(fd, ptr(a), a.length) !== 0) {
        c.close(fd);
        fail(`bind ${path}`);
      }
      if (c.listen(fd, 1) !== 0) {
        c.close(fd);
        fail(`listen ${path}`);
      }
      return fd;
    },
    /** Accepts one connection within `ms`; -1 on timeout. */
    accept(fd: number, ms: number): number {
      if (!waitReadable(fd, ms)) return -1;
      const conn = c.accept(fd, null, null);
      if (conn < 0) fail("accept");
      return conn;
    },
    connect(path: string): number {
      const fd = c.socket(1, 1 | 0o2000000, 0);
      if (fd < 0) fail("socket");
      const a = addr(path);
      if (c.connect(fd, ptr(a), a.length) !== 0) {
        c.close(fd);
        fail(`connect ${path}`);
      }
      return fd;
    },
    /** One sendmsg of `data` (may be partial: returns bytes sent) with `fds` attached. */
    sendmsg(fd: number, data: Uint8Array, fds: number[]): number {
      const iov = new BigUint64Array(2);
      const payload = data.length ? data : new Uint8Array(1); // a message must carry a byte
      iov[0] = BigInt(ptr(payload));
      iov[1] = BigInt(payload.length);
      const space = fds.length ? 16 + Math.ceil((fds.length * 4) / 8) * 8 : 0;
      const ctl = new Uint8Array(Math.max(space, 8));
      if (fds.length) {
        const cv = new DataView(ctl.buffer);
        cv.setBigUint64(0, BigInt(16 + fds.length * 4), true); // cmsg_len
        cv.setInt32(8, 1, true); // SOL_SOCKET
        cv.setInt32(12, 1, true); // SCM_RIGHTS
        fds.forEach((f, i) => cv.setInt32(16 + i * 4, f, true));
      }
      const msg = new BigUint64Array(7);
      msg[2] = BigInt(ptr(iov));
      msg[3] = 1n;
      msg[4] = fds.length ? BigInt(ptr(ctl)) : 0n;
      msg[5] = BigInt(space);
      const n = Number(c.sendmsg(fd, ptr(msg), 0x4000)); // MSG_NOSIGNAL
      if (n < 0) fail("sendmsg");
      return data.length ? n : 0;
    },
    /**
     * One recvmsg into a buffer of `max` bytes with room for `maxFds` descriptors, waiting up
     * to `ms`. Returns the bytes (empty at end of stream) and any descriptors received.
     */
    recvmsg(fd: number, max: number, maxFds: number, ms: number): { data: Uint8Array; fds: number[] } {
      if (!waitReadable(fd, ms)) throw new Error(`recvmsg: nothing received within ${ms} ms`);
      const buf = new Uint8Array(max);
      const iov = new BigUint64Array(2);
      iov[0] = BigInt(ptr(buf));
      iov[1] = BigInt(max);
      const space = 16 + Math.ceil((maxFds * 4) / 8) * 8;
      const ctl = new Uint8Array(space);
      const msg = new BigUint64Array(7);
      msg[2] = BigInt(ptr(iov));
      msg[3] = 1n;
      msg[4] = BigInt(ptr(ctl));
      msg[5] = BigInt(space);
      const n = Number(c.recvmsg(fd, ptr(msg), 0x40000000)); // MSG_CMSG_CLOEXEC
      if (n < 0) fail("recvmsg");
      const fds: number[] = [];
      const controllen = Number(msg[5]);
      const cv = new DataView(ctl.buffer);
      for (let off = 0; off + 16 <= controllen; ) {
        const len = Number(cv.getBigUint64(off, true));
        if (len < 16) break;
        if (cv.getInt32(off + 8, true) === 1 && cv.getInt32(off + 12, true) === 1) {
          for (let i = 16; i + 4 <= len; i += 4) fds.push(cv.getInt32(off + i, true));
        }
        off += Math.ceil(len / 8) * 8;
      }
      return { data: buf.slice(0, n), fds };
    },
    release: closeLib,
  };
}
