import { type ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { workerUrl } from "../sys/index.ts";

type Reply = { ok: true } | { ok: false; kind: ErrorKind; message: string };

const WORKER = workerUrl(import.meta.url, "mount", "mount-worker.ts");

function inWorker(job: object): Promise<void> {
  const w = new Worker(WORKER);
  return new Promise<void>((resolve, reject) => {
    w.onmessage = (e: MessageEvent<Reply>) => {
      w.terminate();
      if (e.data.ok) resolve();
      else reject(new RafsnapError(e.data.kind, e.data.message));
    };
    w.onerror = (e) => {
      w.terminate();
      reject(new RafsnapError("internal", `mount worker failed: ${e.message}`));
    };
    w.postMessage(job);
  });
}

/**
 * {@link mount} run on a worker thread, so the calling thread stays free — needed when the
 * mount reads files served by a FUSE session in this same process (EROFS over blobfs).
 * Rejects with the same errors as `mount`.
 */
export function mountAsync(source: string, target: string, fstype: string, flags: number, data: string | null): Promise<void> {
  return inWorker({ op: "mount", source, target, fstype, flags, data });
}

/** {@link umount} on a worker thread (see {@link mountAsync}). */
export function umountAsync(target: string, flags = 0): Promise<void> {
  return inWorker({ op: "umount", target, flags });
}

/** `fsMountReadonly` (the new mount API, no option length limit) on a worker thread. */
export function fsMountReadonlyAsync(fstype: string, source: string, target: string, options: [string, string][]): Promise<void> {
  return inWorker({ op: "fsmount", fstype, source, target, options });
}
