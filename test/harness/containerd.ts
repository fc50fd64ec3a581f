// A private containerd for end-to-end tests — Debian 12's 1.6.20 by default, or 2.x
// (test/harness/containerd-versions.ts) — with its own root, state, socket and config
// (test/harness/containerd-config.ts); optional proxy snapshotters (rafsnap); stops with its
// shims, containers and mounts.
//
// Facts found on the CI machines (root, cgroup v1 hybrid, kernel 6.18, no systemd):
// - `ctr run` with the default `io.containerd.runc.v2` runtime and Debian's runc 1.1.5 works
//   with no cgroup settings at all: the cgroupfs driver (runc's default; `systemd_cgroup` is
//   off and there is no systemd) puts the container in `/sys/fs/cgroup/<ctrl>/<namespace>/<id>`.
//   Nothing else (no `--runc-systemd-cgroup`, no `[cgroup] path`) is needed. `ctr run --rm`
//   removes the leaf cgroup; the `<namespace>` parent stays, so `stop()` rmdirs it (when empty).
// - containerd 1.6 hard-codes shim sockets under `/run/containerd/s/<sha256(address/ns/id)>`,
//   and runc's state defaults to `/run/containerd/runc/<ns>` and ctr's FIFOs to
//   `/run/containerd/fifo`. The hashed socket names cannot collide with a system containerd;
//   the other two are redirected into our dir (`--runc-root`, `--fifo-dir`, added to `ctr run`).
// - Shims outlive containerd by design. `stop()` first asks containerd to kill and delete every
//   task and container (which also unmounts rootfs and removes cgroups), then SIGTERMs
//   containerd, then kills whatever shims remain whose `-address` is our socket (and their
//   containers), then unmounts everything under our directories.
// - Synchronous GC: see {@link Containerd.gc}.
// - With `cri`, CRI's pods live in namespace `k8s.io` (runc cgroups `<ctrl>/k8s.io/<id>`,
//   sandbox `/dev/shm` mounts under `state/`). `stop()` covers them like `ctr`'s: tasks and
//   containers of every namespace, then the shims, mounts and the empty `k8s.io` cgroups.
//   Removing pods through CRI first (test/harness/cri.ts `stop()`) is cleaner but not required.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unmountUnder } from "./cleanup.ts";
import { containerdConfig } from "./containerd-config.ts";
import { type ContainerdBinaries, systemContainerd } from "./containerd-versions.ts";
import { run, spawnProcess, waitFor, waitForSocket } from "./process.ts";
import type { ChildProcess, RunResult } from "./process.ts";
import { killShims } from "./shims.ts";

/** The system containerd 1.x's binaries; override with `RAFSNAP_CONTAINERD_BIN` / `RAFSNAP_CTR_BIN`. */
export const CONTAINERD_BIN = systemContainerd().containerd;
export const CTR_BIN = systemContainerd().ctr;

/** Options of {@link startContainerd}. */
export interface ContainerdOptions {
  /** Private directory: `config.toml`, `root/`, `state/`, `containerd.log`, `runc/`, `fifo/`. */
  dir: string;
  /**
   * Which containerd: the system 1.x (default, config version 2) or 2.x from
   * `ensureContainerd2()` (config version 3; its `usr/bin` goes first in containerd's `PATH`).
   */
  binaries?: ContainerdBinaries;
  /** Proxy snapshotter plugins: name → unix socket path (`[proxy_plugins.NAME]`). */
  proxySnapshotters?: Record<string, string>;
  /**
   * Enable the CRI plugin (disabled by default). `snapshotter` becomes CRI's snapshotter, with
   * snapshot annotations enabled (how remote snapshotters get their labels). See
   * docs/design.md §6 for the settings CRI needs on these machines (set here).
   */
  cri?: CriConfig;
  /** Namespace `ctr` uses; default `rafsnap-test`. */
  namespace?: string;
  /** Extra TOML appended verbatim to config.toml (e.g. more `[plugins."..."]` tables). */
  extraConfig?: string;
  /**
   * containerd's GC `mutation_threshold` (default 100). A huge value means GC runs only when
   * asked ({@link Containerd.gc}), e.g. for benchmarks that commit without a gc.root label.
   */
  gcMutationThreshold?: number;
  /** How long to wait for the socket and `ctr version`; default 20 s. */
  startTimeoutMs?: number;
}

/** CRI plugin settings of {@link ContainerdOptions.cri}. */
export interface CriConfig {
  /**
   * CRI's snapshotter (`[plugins."io.containerd.grpc.v1.cri".containerd] snapshotter`, for 2.x
   * `[plugins."io.containerd.cri.v1.images"]`); default `overlayfs`.
   */
  snapshotter?: string;
  /** `sandbox_image`; default `rafsnap.test/pause:latest` (import it: test/harness/cri.ts). */
  sandboxImage?: string;
  /**
   * Registry hosts CRI must reach over plain HTTP: each gets
   * `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."HOST"] endpoint = ["http://HOST"]`
   * (containerd 1.6 logs that `mirrors` is deprecated, but honours it). Not needed for
   * `127.0.0.1:PORT`: containerd 1.6's CRI talks plain HTTP to it without any registry config
   * (so a TLS registry there would need a mirror with an `https://` endpoint and a CA, which
   * this option does not write).
   */
  plainHttpRegistries?: string[];
}

/** The containerd namespace CRI always works in. */
export const CRI_NAMESPACE = "k8s.io";

/** Options of one `ctr` call. */
export interface CtrOptions {
  /** Kill `ctr` after this long (stdin is always /dev/null); default 60 s. */
  timeoutMs?: number;
  /** Namespace for this call instead of the instance's. */
  namespace?: string;
}

/** A running containerd started by {@link startContainerd}. */
export interface Containerd {
  /** gRPC socket path (short: under a `/tmp/rafsnap-ctd-*` dir, < 108 bytes). */
  address: string;
  dir: string;
  root: string;
  state: string;
  configFile: string;
  logFile: string;
  namespace: string;
  /** The containerd release running. */
  binaries: ContainerdBinaries;
  process: ChildProcess;
  /**
   * Runs `ctr --address ADDRESS --namespace NS ...args` with stdin from /dev/null and a timeout.
   * For `run` it also adds `--runc-root DIR/runc --fifo-dir DIR/fifo` (keeps runc state and
   * FIFOs out of /run/containerd) unless the args already set them.
   */
  ctr(args: string[], opts?: CtrOptions): Promise<RunResult>;
  /** Like {@link Containerd.ctr} but throws (with stderr and the log tail) on a non-zero exit. */
  ctrOk(args: string[], opts?: CtrOptions): Promise<string>;
  /**
   * Runs containerd's garbage collector synchronously: creates a lease and deletes it with
   * `ctr leases rm --sync`, which makes the leases service call `ScheduleAndWait` on the GC
   * scheduler. That is a full mark-and-sweep over all namespaces, and it returns only after the
   * content store and every dirty snapshotter (proxy ones included: containerd calls their
   * `Walk` and `Remove`) have been cleaned. `ctr images rm --sync` does the same for an image
   * removal; plain `ctr images rm`/`ctr content rm` only schedule GC asynchronously.
   */
  gc(opts?: CtrOptions): Promise<void>;
  /** `ctr snapshots --snapshotter NAME ls`, parsed. */
  snapshots(snapshotter: string, opts?: CtrOptions): Promise<SnapshotRow[]>;
  /** Last bytes of containerd.log, for failure messages. */
  logTail(bytes?: number): string;
  /** Kills tasks, stops containerd, kills leftover shims, unmounts. Idempotent. */
  stop(): Promise<void>;
}

/** One row of `ctr snapshots ls`. */
export interface SnapshotRow {
  key: string;
  parent: string;
  kind: string;
}

/** Parses the table printed by `ctr snapshots ls` (KEY PARENT KIND; PARENT may be empty). */
export function parseSnapshotList(text: string): SnapshotRow[] {
  return text
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0] !== "")
    .map((f) =>
      f.length >= 3 ? { key: f[0] as string, parent: f[1] as string, kind: f[2] as string } : { key: f[0] as string, parent: "", kind: f[1] as string },
    );
}

/**
 * Starts containerd with a fresh config in `opts.dir` and waits until `ctr version` answers.
 * The gRPC socket lives in a short `/tmp/rafsnap-ctd-*` directory because unix socket paths
 * are limited to 108 bytes (shims append `.ttrpc` and hash it, but containerd binds it as is).
 */
export async function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  const dir = opts.dir;
  const root = join(dir, "root");
  const state = join(dir, "state");
  const sockDir = mkdtempSync("/tmp/rafsnap-ctd-");
  const address = join(sockDir, "c.sock");
  const configFile = join(dir, "config.toml");
  const logFile = join(dir, "containerd.log");
  const namespace = opts.namespace ?? "rafsnap-test";
  const bins = opts.binaries ?? systemContainerd();
  for (const d of [root, state, join(dir, "opt"), join(dir, "runc"), join(dir, "fifo")]) mkdirSync(d, { recursive: true });
  writeFileSync(
    configFile,
    containerdConfig({
      configVersion: bins.configVersion,
      root,
      state,
      address,
      optDir: join(dir, "opt"),
      proxySnapshotters: opts.proxySnapshotters,
      cri: opts.cri,
      extraConfig: opts.extraConfig,
      gcMutationThreshold: opts.gcMutationThreshold,
    }),
  );
  const env = bins.binDir ? { PATH: `${bins.binDir}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` } : undefined;
  const proc = spawnProcess({ cmd: [bins.containerd, "--config", configFile], logFile, cwd: dir, env, stopTimeoutMs: 10_000 });

  const ctr = async (args: string[], o: CtrOptions = {}): Promise<RunResult> => {
    let full = args;
    if (args[0] === "run") {
      const extra: string[] = [];
      if (!args.includes("--runc-root")) extra.push("--runc-root", join(dir, "runc"));
      if (!args.includes("--fifo-dir")) extra.push("--fifo-dir", join(dir, "fifo"));
      full = ["run", ...extra, ...args.slice(1)];
    }
    return run([bins.ctr, "--address", address, "--namespace", o.namespace ?? namespace, ...full], { timeoutMs: o.timeoutMs ?? 60_000 });
  };
  const logTail = (bytes = 4000) => proc.logTail(bytes);
  const ctrOk = async (args: string[], o: CtrOptions = {}): Promise<string> => {
    const r = await ctr(args, o);
    if (r.code !== 0 || r.timedOut) {
      throw new Error(
        `ctr ${args.join(" ")} ${r.timedOut ? "timed out" : `exited ${r.code}`}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}\n--- containerd.log (tail) ---\n${logTail(3000)}`,
      );
    }
    return r.stdout;
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const errors: string[] = [];
      if (!proc.hasExited()) {
        try {
          await deleteAllTasks(ctr);
        } catch (err) {
          errors.push(`deleting tasks: ${(err as Error).message}`);
        }
      }
      await proc.stop();
      await killShims(address, state);
      for (const d of [dir, sockDir]) {
        try {
          unmountUnder(d);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      removeNamespaceCgroups(namespace);
      // CRI's containers live in /sys/fs/cgroup/<ctrl>/k8s.io/<id>; runc removes the leaves.
      if (opts.cri && namespace !== CRI_NAMESPACE) removeNamespaceCgroups(CRI_NAMESPACE);
      rmSync(sockDir, { recursive: true, force: true });
      if (errors.length) throw new Error(`containerd stop: ${errors.join("; ")}`);
    })();
    return stopping;
  };

  try {
    await waitForSocket(address, opts.startTimeoutMs ?? 20_000, () => !proc.hasExited());
    await waitFor(
      "ctr version",
      async () => (await ctr(["version"], { timeoutMs: 5000 })).code === 0,
      opts.startTimeoutMs ?? 20_000,
      () => !proc.hasExited(),
    );
  } catch (err) {
    await stop().catch(() => {});
    throw new Error(`${(err as Error).message}\n--- containerd.log (tail) ---\n${logTail()}`);
  }

  return {
    address,
    dir,
    root,
    state,
    configFile,
    logFile,
    namespace,
    binaries: bins,
    process: proc,
    ctr,
    ctrOk,
    async gc(o: CtrOptions = {}) {
      const lease = (await ctrOk(["leases", "create"], o)).trim();
      await ctrOk(["leases", "rm", "--sync", lease], o);
    },
    async snapshots(snapshotter: string, o: CtrOptions = {}) {
      return parseSnapshotList(await ctrOk(["snapshots", "--snapshotter", snapshotter, "ls"], o));
    },
    logTail,
    stop,
  };
}

/** Asks containerd to SIGKILL and delete every task, then delete every container, in all namespaces. */
async function deleteAllTasks(ctr: (args: string[], o?: CtrOptions) => Promise<RunResult>): Promise<void> {
  const t = { timeoutMs: 15_000 };
  const nss = (await ctr(["namespaces", "ls", "-q"], t)).stdout.split("\n").filter(Boolean);
  for (const ns of nss) {
    const o = { ...t, namespace: ns };
    const tasks = (await ctr(["tasks", "ls", "-q"], o)).stdout.split("\n").filter(Boolean);
    for (const id of tasks) {
      await ctr(["tasks", "kill", "-s", "SIGKILL", id], o);
      await ctr(["tasks", "rm", "-f", id], o);
    }
    const containers = (await ctr(["containers", "ls", "-q"], o)).stdout.split("\n").filter(Boolean);
    for (const id of containers) await ctr(["containers", "rm", id], o);
  }
}

/** rmdir `/sys/fs/cgroup/<ctrl>/<namespace>` where empty (left by cgroupfs after `ctr run --rm`). */
function removeNamespaceCgroups(namespace: string): void {
  const base = "/sys/fs/cgroup";
  if (!existsSync(base)) return;
  const candidates = [join(base, namespace), ...readdirSync(base).map((c) => join(base, c, namespace))];
  for (const d of candidates) {
    try {
      rmdirSync(d); // fails unless it is an empty cgroup (or empty dir), which is what we want
    } catch {
      // absent or in use
    }
  }
}
