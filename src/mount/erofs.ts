import { failedPrecondition } from "../errdefs/index.ts";
import { fsMountReadonlyAsync, mountAsync } from "./async.ts";
import { MAX_MOUNT_DATA, MountFlags } from "./mount.ts";
import { setReadAheadKb } from "./readahead.ts";

/** Read-ahead of file-backed EROFS mounts over blobfs, KiB (the kernel's default is 128). */
export const EROFS_READ_AHEAD_KB = 512;

/** How {@link mountErofs} mounted an image. */
export interface ErofsMount {
  /** "file" (file-backed EROFS, kernel ≥ 6.12) or "loop" (loop devices over the files). */
  via: "file" | "loop";
  /** Loop devices used (already marked to detach themselves when the mount goes). */
  loops: string[];
}

async function losetup(args: string[]): Promise<string> {
  const p = Bun.spawn(["losetup", ...args], { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw failedPrecondition(`losetup ${args.join(" ")}: ${err.trim() || `exit ${code}`}`);
  return out.trim();
}

/**
 * Mounts the EROFS image `bootstrap` read-only at `target` with `devices` as its blob devices.
 * File-backed first (mount(2) with `device=` options, or fsconfig when they do not fit one
 * page), with a {@link EROFS_READ_AHEAD_KB} KiB read-ahead where the kernel lets us set it; when the kernel answers ENOTBLK — it has no file-backed EROFS and wants block
 * devices — or `forceLoop` is set, the bootstrap and every device go on read-only loop devices
 * (util-linux `losetup`), which are detached right after mounting so the kernel frees them
 * when the mount goes. Loop devices made for a mount that fails are detached again. Throws the
 * mount's error (kinds as `mount`) or the losetup failure.
 */
export async function mountErofs(bootstrap: string, target: string, devices: string[], forceLoop = false): Promise<ErofsMount> {
  if (!forceLoop) {
    try {
      await mountWith(bootstrap, target, devices);
      setReadAheadKb(target, EROFS_READ_AHEAD_KB);
      return { via: "file", loops: [] };
    } catch (e) {
      if (!String((e as Error).message).includes("ENOTBLK")) throw e;
    }
  }
  const loops: string[] = [];
  try {
    for (const f of [bootstrap, ...devices]) loops.push(await losetup(["--find", "--show", "--read-only", f]));
    await mountWith(loops[0] as string, target, loops.slice(1));
    return { via: "loop", loops };
  } finally {
    // A busy loop device is only marked autoclear by a detach; an unused one goes at once.
    for (const l of loops) await losetup(["--detach", l]).catch(() => {});
  }
}

function mountWith(source: string, target: string, devices: string[]): Promise<void> {
  const data = devices.map((d) => `device=${d}`).join(",");
  if (Buffer.byteLength(data) <= MAX_MOUNT_DATA) return mountAsync(source, target, "erofs", MountFlags.MS_RDONLY, data || null);
  return fsMountReadonlyAsync(
    "erofs",
    source,
    target,
    devices.map((d) => ["device", d]),
  );
}
