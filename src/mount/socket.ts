import { lstatSync, mkdirSync, type Stats, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname } from "node:path";
import { failedPrecondition } from "../errdefs/index.ts";

/**
 * True when something accepts a connection on the unix socket `path` within `timeoutMs` (a
 * live server); false for a missing, stale or unresponsive socket.
 */
export function socketAccepts(path: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Makes `path` ready for a new listening unix socket: creates its directory (mode
 * `dirMode`), removes a stale socket file (one nobody accepts on) and returns true if it did,
 * and refuses — FailedPrecondition naming `what` and the path — a live socket (another
 * server is using it) or any other kind of file.
 */
export async function prepareSocketPath(path: string, what: string, dirMode = 0o711): Promise<boolean> {
  mkdirSync(dirname(path), { recursive: true, mode: dirMode });
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
  if (!st.isSocket()) throw failedPrecondition(`${what} ${path} exists and is not a socket; refusing to replace it`);
  if (await socketAccepts(path)) throw failedPrecondition(`${what} ${path} is in use by another process`);
  unlinkSync(path);
  return true;
}
