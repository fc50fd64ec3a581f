import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, type Stats, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
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
  try {
    mkdirSync(dirname(path), { recursive: true, mode: dirMode });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "EEXIST" || code === "ENOTDIR" ? "a file that is not a directory is in the way" : `${code ?? (e as Error).message}`;
    throw failedPrecondition(`${what} ${path}: its directory ${dirname(path)} cannot be created (${why})`, e);
  }
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

/** The longest path a unix socket can be bound at (sun_path, with its NUL). */
const SUN_PATH_MAX = 107;

/**
 * Binds a listening unix socket at `path` with `mode` from its first moment: `bind(tmp)` is
 * called with a path inside a fresh 0700 directory next to `path` (nobody else can reach the
 * socket there), the socket gets `mode` (and `owner`, when given), and is then renamed to
 * `path`. When that temporary path would be longer than a socket path can be, binds at `path`
 * directly under a 0177 umask instead. Removes the temporary directory whatever happens;
 * throws what `bind` throws.
 */
export async function bindPrivately<T>(path: string, mode: number, bind: (at: string) => T | Promise<T>, owner?: { uid: number; gid: number }): Promise<T> {
  const dir = mkdtempSync(join(dirname(path), ".s"));
  const tmp = join(dir, "s");
  try {
    if (Buffer.byteLength(tmp) > SUN_PATH_MAX) {
      const old = process.umask(0o177);
      let out: T;
      try {
        out = await bind(path);
      } finally {
        process.umask(old);
      }
      chmodSync(path, mode);
      if (owner) chownSync(path, owner.uid, owner.gid);
      return out;
    }
    const out = await bind(tmp);
    chmodSync(tmp, mode);
    if (owner) chownSync(tmp, owner.uid, owner.gid);
    renameSync(tmp, path);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * An HTTP server (Bun.serve) on the unix socket `path`, bound with {@link bindPrivately} (so
 * `mode`, and `owner` when given, hold from its first moment). Idle connections are never
 * closed (nydusd clients hold one open to notice a daemon's death; a hot upgrade answers
 * only when done). A request whose `handle` throws gets `onError(err, req)`'s response.
 */
export function serveHttpUnix(
  path: string,
  mode: number,
  handle: (req: Request) => Promise<Response>,
  onError: (err: unknown, req: Request) => Response,
  owner?: { uid: number; gid: number },
): Promise<ReturnType<typeof Bun.serve>> {
  return bindPrivately(
    path,
    mode,
    (at) =>
      Bun.serve({
        unix: at,
        // (Bun's types list idleTimeout only for TCP listeners; it applies to unix ones too.)
        ...({ idleTimeout: 0 } as object),
        async fetch(req: Request) {
          try {
            return await handle(req);
          } catch (err) {
            return onError(err, req);
          }
        },
      }),
    owner,
  );
}
