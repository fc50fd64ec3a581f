import { closeSync } from "node:fs";
import { unavailable } from "../errdefs/index.ts";
import { workerUrl } from "../sys/index.ts";

/** A passed descriptor (e.g. `/dev/fuse`) and the opaque daemon state that goes with it. */
export interface FdState {
  fd: number;
  state: Uint8Array;
}

const WORKER = workerUrl(import.meta.url, "mount", "fdpass-worker.ts");

function exchange<T>(job: object, what: string, onListening?: () => void): Promise<T> {
  const w = new Worker(WORKER);
  return new Promise<T>((resolve, reject) => {
    w.onmessage = (e: MessageEvent<{ ok: boolean; message?: string; listening?: boolean } & T>) => {
      if (e.data.listening) {
        onListening?.();
        return;
      }
      w.terminate();
      if (e.data.ok) resolve(e.data);
      else reject(unavailable(`${what}: ${e.data.message}`));
    };
    w.onerror = (e) => {
      w.terminate();
      reject(unavailable(`${what}: ${e.message}`));
    };
    w.postMessage(job);
  });
}

/**
 * Supervisor side, save: listens on `path`, accepts one connection within `timeoutMs`,
 * reads the state to end of stream and keeps the first descriptor passed (SCM_RIGHTS), as
 * nydus-snapshotter's supervisor does (docs/compat.md §4.6). Unavailable on timeout or when no
 * descriptor arrives.
 */
export function receiveState(path: string, timeoutMs = 10_000, onListening?: () => void): Promise<FdState> {
  return exchange({ op: "receive", path, timeoutMs }, `receive state on ${path}`, onListening);
}

/** Supervisor side, restore: listens on `path` and sends `state` with `fd` to one caller. */
export async function serveState(path: string, s: FdState, timeoutMs = 10_000, onListening?: () => void): Promise<void> {
  await exchange({ op: "serve", path, fd: s.fd, state: s.state, timeoutMs }, `serve state on ${path}`, onListening);
}

/** Daemon side (`sendfd`): connects to the supervisor at `path` and sends `state` with `fd`. */
export async function sendState(path: string, s: FdState): Promise<void> {
  await exchange({ op: "send", path, fd: s.fd, state: s.state }, `send state to ${path}`);
}

/** Daemon side (`takeover`): connects to the supervisor at `path` and receives state and fd. */
export function fetchState(path: string, timeoutMs = 10_000): Promise<FdState> {
  return exchange({ op: "fetch", path, timeoutMs }, `fetch state from ${path}`);
}

/**
 * The supervisor of one daemon: keeps the last saved descriptor and state in memory.
 * `save(trigger)` listens, then runs `trigger` (e.g. `PUT /api/v1/daemon/fuse/sendfd`) and stores
 * what the daemon sends, replacing (and closing) the previous copy; `restore(trigger)`
 * serves the stored copy to the successor that `trigger` asks to take over.
 */
export class Supervisor {
  private saved: FdState | undefined;

  constructor(readonly path: string) {}

  /** True once a state has been saved. */
  has(): boolean {
    return this.saved !== undefined;
  }

  async save(trigger: () => Promise<void>, timeoutMs = 10_000): Promise<void> {
    const { promise: listening, resolve } = Promise.withResolvers<void>();
    const pending = receiveState(this.path, timeoutMs, resolve);
    await Promise.race([listening, pending]); // the socket must exist before the daemon connects
    await trigger();
    const got = await pending;
    if (this.saved) closeSync(this.saved.fd);
    this.saved = got;
  }

  async restore(trigger: () => Promise<void>, timeoutMs = 10_000): Promise<void> {
    if (!this.saved) throw unavailable(`supervisor ${this.path} has no saved state`);
    const { promise: listening, resolve } = Promise.withResolvers<void>();
    const pending = serveState(this.path, this.saved, timeoutMs, resolve);
    await Promise.race([listening, pending]);
    await trigger();
    await pending;
  }

  /** Closes the held descriptor. */
  close(): void {
    if (this.saved) closeSync(this.saved.fd);
    this.saved = undefined;
  }
}
