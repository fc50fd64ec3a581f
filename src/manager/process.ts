import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type Socket } from "node:net";
import { unavailable } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { abortFuseConnection, isFuseMount, mountEntries, UmountFlags, umountAsync } from "../mount/index.ts";
import type { DaemonRow } from "../store/index.ts";
import { pidAlive } from "../sys/index.ts";
import type { DaemonInfoReply, NydusdClient } from "./client.ts";
import { nydusdArgs } from "./command.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a pid is a live process: one home, src/sys/process.ts. */
export { pidAlive };

/**
 * Whether live process `pid` is the daemon of `row`: its command line carries `--apisock`
 * with the row's API socket (every daemon the manager starts has one, see command.ts). A pid
 * recorded before a reboot, or reused since, belongs to another process and is never
 * signalled.
 */
export function isDaemonOf(pid: number, row: Pick<DaemonRow, "apiSocket">): boolean {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return false;
  }
  const i = args.indexOf("--apisock");
  return i >= 0 && args[i + 1] === row.apiSocket;
}

/**
 * Gives daemon `pid` an OOM score adjustment of 0: it is forked with the snapshotter's own
 * (the unit's `OOMScoreAdjust=-999`), which would make the kernel kill other processes before
 * a daemon that a hostile image drove to exhaust memory. Failures are logged.
 */
export function unprotectFromOom(pid: number, log: Logger): void {
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, "0");
  } catch (e) {
    log.warn(`nydusd pid ${pid}: could not reset its OOM score adjustment: ${(e as Error).message}`);
  }
}

/** How to run nydusd: the command (binary and leading args) and the environment. */
export interface NydusdCommand {
  cmd: string[];
  env?: Record<string, string>;
}

/**
 * Starts the daemon of `row` detached (its own session, so signals to rafsnap's process group
 * do not reach it, and it outlives rafsnap), with `RAFSNAP_RUN_DIR=runDir` for the built-in
 * daemon's blobfs mounts. Output goes to rafsnap's own stdout/stderr when the daemon logs to
 * stdout (`[log] log_to_stdout`), else it is appended to `<logDir>/nydusd.log` (the file the
 * daemon's `--log-file` writes) — never to a pipe, which would break when rafsnap restarts.
 * `upgrade` starts a hot upgrade's successor (`--upgrade`: it waits in INIT for takeover).
 */
export function spawnDaemon(row: DaemonRow, command: NydusdCommand, runDir: string, prefetchFiles?: string, upgrade = false): ChildProcess {
  mkdirSync(row.logDir, { recursive: true, mode: 0o700 });
  let fd: number | undefined;
  if (!row.logToStdout) fd = openSync(`${row.logDir}/nydusd.log`, "a", 0o600);
  try {
    const child = spawn(command.cmd[0] as string, [...command.cmd.slice(1), ...nydusdArgs(row, prefetchFiles, upgrade)], {
      detached: true,
      stdio: fd === undefined ? ["ignore", "inherit", "inherit"] : ["ignore", fd, fd],
      env: { ...process.env, ...command.env, RAFSNAP_RUN_DIR: runDir },
    });
    child.unref();
    return child;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Polls the daemon's API until it reports a state in `states` (20 ms steps, up to
 * `timeoutMs`). Stops early — Unavailable — when `exited()` says the process is gone; on
 * timeout, Unavailable with the last state or error seen.
 */
export async function waitForState(client: NydusdClient, states: string[], timeoutMs: number, exited: () => boolean): Promise<DaemonInfoReply> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    if (existsSync(client.socket)) {
      try {
        const info = await client.info(2000);
        if (states.includes(info.state)) return info;
        last = `state ${info.state}`;
      } catch (e) {
        last = (e as Error).message;
      }
    }
    if (exited()) throw unavailable(`nydusd (API ${client.socket}) exited before reaching ${states.join("/")} (${last})`);
    if (Date.now() > deadline) throw unavailable(`nydusd (API ${client.socket}) did not reach ${states.join("/")} in ${timeoutMs} ms (${last})`);
    await sleep(20); // a container start waits on this: poll often, a socket check is cheap
  }
}

/** How often the liveness connection asks `GET /api/v1/daemon` (see {@link Watch}). */
const KEEPALIVE_MS = 4000;

/**
 * Liveness of one daemon (§4.4): holds a connection to its API socket and calls `onDeath`
 * once when the kernel closes it (the daemon died), unless {@link Watch.stop} was called.
 * Connecting retries 20 × 100 ms; failing that counts as a death.
 *
 * The connection sends a keep-alive `GET /api/v1/daemon` every few seconds (answers are
 * discarded): Bun's HTTP server — the built-in daemon's — closes a connection that has been
 * idle for about 12 s whatever its idle timeout says (measured), which would look like a
 * death. A daemon that never closes idle connections (the real nydusd) just answers.
 */
export class Watch {
  private sock: Socket | undefined;
  private stopped = false;
  private timer: ReturnType<typeof setInterval> | undefined;

  private constructor(private readonly onDeath: () => void) {}

  static async start(socketPath: string, onDeath: () => void): Promise<Watch> {
    const w = new Watch(onDeath);
    for (let i = 0; i < 20; i++) {
      const s = await new Promise<Socket | undefined>((resolve) => {
        const c = connect(socketPath);
        c.once("connect", () => resolve(c));
        c.once("error", () => resolve(undefined));
      });
      if (s) {
        w.sock = s;
        s.on("error", () => {});
        s.on("data", () => {});
        s.once("close", () => {
          clearInterval(w.timer);
          if (!w.stopped) w.onDeath();
        });
        w.timer = setInterval(() => s.write("GET /api/v1/daemon HTTP/1.1\r\nHost: localhost\r\n\r\n"), KEEPALIVE_MS);
        w.timer.unref();
        return w;
      }
      await sleep(100);
    }
    queueMicrotask(() => w.onDeath());
    return w;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.sock?.destroy();
  }
}

/**
 * Clears what a dead daemon left (§4.4 ClearVestige): its mounts — the mountpoint, mounts
 * below it (shared instances) and the blobfs mounts in `runDir` — found in
 * `/proc/self/mountinfo` (a dead FUSE mount fails stat, so mountinfo is the only truth). The
 * FUSE connections among them are aborted first, so that nothing waiting on them (a reader,
 * `sync`) hangs and no connection outlives its server; then every mount is detached and
 * `runDir` and the API socket file are removed. Failures are logged, not thrown.
 */
export async function clearVestige(row: DaemonRow, runDir: string, log: Logger): Promise<void> {
  const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
  const doomed = mountEntries()
    .filter((e) => under(e.mountPoint, row.mountpoint) || under(e.mountPoint, runDir))
    .reverse(); // children first
  for (const e of doomed)
    if (isFuseMount(e) && abortFuseConnection(e.minor)) log.info(`clear vestige of daemon ${row.id}: aborted the FUSE connection of ${e.mountPoint}`);
  for (const e of doomed) {
    try {
      await umountAsync(e.mountPoint, UmountFlags.MNT_DETACH);
    } catch (err) {
      log.warn(`clear vestige of daemon ${row.id}: umount ${e.mountPoint}: ${(err as Error).message}`);
    }
  }
  rmSync(runDir, { recursive: true, force: true });
  rmSync(row.apiSocket, { force: true });
}

/** Waits (up to `timeoutMs`) until `pid` is gone; true when it is. */
export async function waitPidGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * Sends `signal` (none: just wait) to the daemon process of `row` — only if that pid still is
 * that daemon ({@link isDaemonOf}; another process is logged and left alone) — waits 5 s for
 * it to go, then SIGKILLs it and waits 2 s more.
 */
export async function stopProcess(row: DaemonRow, signal: NodeJS.Signals | null, log: Logger): Promise<void> {
  if (!pidAlive(row.pid)) return;
  if (!isDaemonOf(row.pid, row)) {
    log.warn(`pid ${row.pid} recorded for nydusd ${row.id} is another process now; not signalled`);
    return;
  }
  try {
    if (signal) process.kill(row.pid, signal);
  } catch {}
  if (!(await waitPidGone(row.pid, 5000))) {
    try {
      process.kill(row.pid, "SIGKILL");
    } catch {}
    await waitPidGone(row.pid, 2000);
  }
}

/**
 * Clears run directory `dir` of a daemon id the store no longer records and says whether it
 * may be removed (true: nothing of a live daemon is left in it). May throw; the manager logs
 * it and keeps the directory.
 */
export type ReapRunDir = (dir: string, log: Logger) => boolean;

/**
 * Run directories under `runRoot` of daemon ids not in `known` (a daemon removed while its
 * vestiges could not be cleared, or left by a crash in between): each is handed to `reap`
 * (the built-in daemon's blobfs mounts: their FUSE connections aborted, the mounts detached,
 * so none is left without a server) and removed when `reap` says nothing live is left in it.
 * Recorded daemons reap their own predecessors' blobfs when they mount theirs. Failures are
 * logged, not thrown.
 */
export function reapOrphans(runRoot: string, known: Set<string>, reap: ReapRunDir, log: Logger): void {
  let ids: string[];
  try {
    ids = readdirSync(runRoot);
  } catch {
    return;
  }
  for (const id of ids) {
    if (known.has(id)) continue;
    const dir = join(runRoot, id);
    try {
      if (reap(dir, log)) rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      log.warn(`run directory ${dir} of an unknown daemon: ${(e as Error).message}`);
    }
  }
}
