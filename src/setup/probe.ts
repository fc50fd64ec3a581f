/**
 * Small probes of the node used by `setup` and `doctor`: the installed containerd's version,
 * whether a unix socket accepts connections, the kernel's filesystems and release.
 */
import { readFile } from "node:fs/promises";
import { release } from "node:os";

/**
 * Major version of the `containerd` found in `PATH` (from `containerd --version`, e.g.
 * "containerd github.com/containerd/containerd 1.6.20~ds1 …" or "… v2.0.0 …"), or
 * `undefined` when it is not installed or the output is not understood. Never throws.
 */
export function containerdMajorVersion(bin = "containerd"): number | undefined {
  try {
    const r = Bun.spawnSync([bin, "--version"], { stdout: "pipe", stderr: "ignore", stdin: "ignore" });
    if (r.exitCode !== 0) return undefined;
    const m = /\sv?(\d+)\.(\d+)/.exec(r.stdout.toString());
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Filesystem types the running kernel knows (`/proc/filesystems`); empty when unreadable. */
export async function kernelFilesystems(path = "/proc/filesystems"): Promise<Set<string>> {
  const text = await readFile(path, "utf8").catch(() => "");
  return new Set(
    text
      .split("\n")
      .map((l) => l.trim().split(/\s+/).pop() ?? "")
      .filter(Boolean),
  );
}

/** The kernel release as [major, minor] (`uname -r`), or `undefined` when not understood. */
export function kernelVersion(rel = release()): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

export { socketAccepts } from "../mount/index.ts";
