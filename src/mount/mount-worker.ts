// Runs one mount(2)/umount2(2) off the main thread: mounting EROFS on a device file served
// by this process's own FUSE session blocks until the main thread answers FUSE requests.
import { fsMountReadonly } from "./fsmount.ts";
import { mount, umount } from "./mount.ts";

declare const self: Worker;

type Job =
  | { op: "mount"; source: string; target: string; fstype: string; flags: number; data: string | null }
  | { op: "umount"; target: string; flags: number }
  | { op: "fsmount"; fstype: string; source: string; target: string; options: [string, string][] };

self.onmessage = (e: MessageEvent<Job>) => {
  const j = e.data;
  try {
    if (j.op === "mount") mount(j.source, j.target, j.fstype, j.flags, j.data);
    else if (j.op === "fsmount") fsMountReadonly(j.fstype, j.source, j.target, j.options);
    else umount(j.target, j.flags);
    self.postMessage({ ok: true });
  } catch (err) {
    const e2 = err as { kind?: string; message?: string };
    self.postMessage({ ok: false, kind: e2.kind ?? "internal", message: e2.message ?? String(err) });
  }
};
