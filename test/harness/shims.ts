// Finding and ending the containerd shims (and their containers) that OUR containerd started.
// Shims outlive containerd by design, so stopping containerd is not enough.
import { existsSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { readMountInfo } from "./cleanup.ts";
import { isAlive, signal, stopPid } from "./process.ts";

/** A running shim process. */
export interface Shim {
  pid: number;
  /** `-namespace` argument. */
  namespace: string;
  /** `-id` argument (the container/sandbox id). */
  id: string;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .filter((s) => s !== "");
  } catch {
    return [];
  }
}

function argAfter(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/**
 * Shims started by the containerd listening on `address`: processes named `containerd-shim*`
 * whose `-address` argument equals `address` (containerd passes its own gRPC address).
 */
export function findShims(address: string): Shim[] {
  const out: Shim[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = cmdline(Number(name));
    if (!argv[0] || !basename(argv[0]).startsWith("containerd-shim")) continue;
    if (argAfter(argv, "-address") !== address) continue;
    out.push({ pid: Number(name), namespace: argAfter(argv, "-namespace") ?? "", id: argAfter(argv, "-id") ?? "" });
  }
  return out;
}

/** All descendants of `pid` (children first, then grandchildren, ...). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift() as number;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      let children = "";
      try {
        children = readFileSync(`/proc/${p}/task/${t}/children`, "utf8");
      } catch {
        continue;
      }
      for (const c of children.split(" ").filter(Boolean).map(Number)) {
        if (!out.includes(c)) {
          out.push(c);
          queue.push(c);
        }
      }
    }
  }
  return out;
}

/** Filesystem directories of the cgroups `pid` is in (v1 controllers and v2), or []. */
export function cgroupDirs(pid: number): string[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, "utf8");
  } catch {
    return [];
  }
  const mounts = readMountInfo().filter((m) => m.fsType === "cgroup" || m.fsType === "cgroup2");
  const dirs: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, hier, ctrls, path] = m as unknown as [string, string, string, string];
    const wanted = ctrls.split(",").filter(Boolean);
    const mount = mounts.find((mi) =>
      hier === "0" && ctrls === "" ? mi.fsType === "cgroup2" : mi.fsType === "cgroup" && wanted.every((c) => mi.superOptions.split(",").includes(c)),
    );
    if (!mount || path === "/") continue;
    const rel = mount.root !== "/" && path.startsWith(mount.root) ? path.slice(mount.root.length) : path;
    dirs.push(join(mount.mountPoint, rel));
  }
  return dirs;
}

/**
 * Ends the shims of the containerd at `address` without containerd's help: SIGKILL to every
 * process below each shim (the container's init first, which takes its PID namespace with it),
 * then SIGTERM/SIGKILL to the shim itself; then removes the containers' now-empty cgroups (the
 * leaf, and its parent when the parent is named after the namespace, as `ctr` lays them out) and
 * the shim sockets named in the task bundles under `stateDir` (they live in
 * `/run/containerd/s/<sha256 of address+ns+id>`, a path containerd 1.6 hard-codes).
 * @returns the shims found.
 */
export async function killShims(address: string, stateDir: string): Promise<Shim[]> {
  const shims = findShims(address);
  const cgroups = new Map<string, string>(); // cgroup dir -> namespace
  for (const shim of shims) {
    const procs = descendants(shim.pid);
    for (const p of procs) for (const d of cgroupDirs(p)) cgroups.set(d, shim.namespace);
    for (const p of procs) signal(p, "SIGKILL");
    for (const p of procs) {
      const deadline = Date.now() + 2000;
      while (isAlive(p) && Date.now() < deadline) await Bun.sleep(20);
    }
  }
  await Promise.all(shims.map((s) => stopPid(s.pid, 3000)));
  removeCgroups(cgroups);
  removeShimSockets(stateDir);
  return shims;
}

/** Removes empty container cgroups, then their namespace-named parents when empty. */
function removeCgroups(dirs: Map<string, string>): void {
  // The shim's own cgroup is containerd's; only directories of container processes are here,
  // and rmdir(2) of a cgroup fails unless it is empty, so nothing in use can be removed.
  for (const [dir, ns] of dirs) {
    const parent = dirname(dir);
    for (let i = 0; i < 20; i++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "EBUSY") break;
        Bun.sleepSync(25); // the killed task may take a moment to leave the cgroup
      }
    }
    if (ns && basename(parent) === ns) {
      try {
        rmdirSync(parent);
      } catch {
        // still has other children, or already gone
      }
    }
  }
}

/** Deletes shim sockets recorded in `STATE/io.containerd.runtime.v2.task/NS/ID/address`. */
export function removeShimSockets(stateDir: string): void {
  const tasks = join(stateDir, "io.containerd.runtime.v2.task");
  if (!existsSync(tasks)) return;
  for (const ns of readdirSync(tasks)) {
    let ids: string[] = [];
    try {
      ids = readdirSync(join(tasks, ns));
    } catch {
      continue;
    }
    for (const id of ids) {
      let addr = "";
      try {
        addr = readFileSync(join(tasks, ns, id, "address"), "utf8").trim();
      } catch {
        continue;
      }
      const path = addr.replace(/^unix:\/\//, "");
      if (path.startsWith("/run/containerd/s/") && existsSync(path)) {
        try {
          unlinkSync(path);
        } catch {
          // best effort
        }
      }
    }
  }
}
