// A filesystem without d_type, for the tests of rafsnap's start-up check.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

function sh(...cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}`);
}

/**
 * Loop-mounts an 8 MiB ext2 image made with `mkfs.ext2 -O ^filetype` at `<dir>/mnt`: its
 * directory entries carry no file type, so the kernel reports DT_UNKNOWN (e2fsprogs and
 * util-linux are Debian packages the tests install). Root only. Throws when any step fails;
 * the returned `unmount()` undoes the mount (the image stays in `dir`).
 */
export function mountNoDTypeFs(dir: string): { mnt: string; unmount(): void } {
  const image = join(dir, "nodtype.img");
  const mnt = join(dir, "mnt");
  mkdirSync(mnt, { recursive: true });
  sh("truncate", "-s", "8M", image);
  sh("mkfs.ext2", "-q", "-F", "-O", "^filetype", image);
  sh("mount", "-o", "loop", image, mnt);
  return { mnt, unmount: () => sh("umount", mnt) };
}
