// Child processes for the real-components tests: spawn with the log in a file, stop by PID only.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { dirname } from "node:path";

/** How to start a {@link ChildProcess}. */
export interface SpawnOptions {
  /** Command line; `cmd[0]` is looked up in `PATH`. */
  cmd: string[];
  /** File that receives the child's stdout and stderr (created, appended to). */
  logFile: string;
  /** Working directory; defaults to the current one. */
  cwd?: string;
  /** Extra environment variables, merged over `process.env`. */
  env?: Record<string, string>;
  /** Grace period between SIGTERM and SIGKILL in {@link ChildProcess.stop}; default 5000 ms. */
  stopTimeoutMs?: number;
}

/** A child process started by a test, stopped by its own PID (never by name). */
export interface ChildProcess {
  /** PID of the child. */
  readonly pid: number;
  /** Where stdout and stderr go. */
  readonly logFile: string;
  /** Resolves with the exit code once the child has exited. */
  readonly exited: Promise<number>;
  /** Whether the child has exited. */
  hasExited(): boolean;
  /** Last `bytes` of the log file, for failure messages. */
  logTail(bytes?: number): string;
  /** SIGTERM, wait up to the grace period, then SIGKILL and wait. Idempotent. */
  stop(): Promise<number>;
}

/**
 * Starts `opts.cmd` with stdin closed and stdout/stderr appended to `opts.logFile`.
 * @returns a handle whose `stop()` signals exactly this PID.
 */
export function spawnProcess(opts: SpawnOptions): ChildProcess {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const fd = openSync(opts.logFile, "a");
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(opts.cmd, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdin: "ignore",
      stdout: fd,
      stderr: fd,
    });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  let exitedFlag = false;
  const exited = proc.exited.then((code) => {
    exitedFlag = true;
    return code;
  });
  const grace = opts.stopTimeoutMs ?? 5000;
  let stopping: Promise<number> | undefined;
  return {
    pid: proc.pid,
    logFile: opts.logFile,
    exited,
    hasExited: () => exitedFlag,
    logTail: (bytes = 4000) => tailFile(opts.logFile, bytes),
    stop() {
      stopping ??= (async () => {
        if (exitedFlag) return exited;
        signal(proc.pid, "SIGTERM");
        const done = await Promise.race([exited.then(() => true), Bun.sleep(grace).then(() => false)]);
        if (!done) signal(proc.pid, "SIGKILL");
        return exited;
      })();
      return stopping;
    },
  };
}

/** Sends `sig` to `pid`, ignoring "no such process". */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Whether a process with this PID exists (and is not a zombie). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/**
 * Stops a process that is not our child (e.g. a containerd shim) by PID: SIGTERM, poll until
 * gone for up to `timeoutMs`, then SIGKILL.
 */
export async function stopPid(pid: number, timeoutMs = 5000): Promise<void> {
  signal(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await Bun.sleep(50);
  if (isAlive(pid)) signal(pid, "SIGKILL");
  const hard = Date.now() + 2000;
  while (isAlive(pid) && Date.now() < hard) await Bun.sleep(20);
}

/** Last `bytes` of a file, or "" when it does not exist. */
export function tailFile(path: string, bytes = 4000): string {
  try {
    const text = readFileSync(path, "utf8");
    return text.length > bytes ? text.slice(-bytes) : text;
  } catch {
    return "";
  }
}

/**
 * Waits until `path` exists and is a unix socket.
 * @param alive optional check; when it returns false (child died) the wait fails early.
 * @throws Error after `timeoutMs`.
 */
export async function waitForSocket(path: string, timeoutMs: number, alive?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(path) && statSync(path).isSocket()) return;
    if (alive && !alive()) throw new Error(`process died before creating socket ${path}`);
    if (Date.now() > deadline) throw new Error(`socket ${path} did not appear within ${timeoutMs} ms`);
    await Bun.sleep(25);
  }
}

/**
 * Polls `probe` until it returns true.
 * @throws Error naming `what` after `timeoutMs`, or when `alive` returns false.
 */
export async function waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs: number, alive?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (alive && !alive()) throw new Error(`process died while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms`);
    await Bun.sleep(50);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bind :0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no port"))));
    });
  });
}

/** Result of {@link run}. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** True when the command was killed because it exceeded its timeout. */
  timedOut: boolean;
}

/**
 * Runs a short command to completion with stdin from /dev/null and a timeout (SIGKILL on expiry).
 */
export async function run(cmd: string[], opts: { timeoutMs?: number; env?: Record<string, string>; cwd?: string } = {}): Promise<RunResult> {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signal(proc.pid, "SIGKILL");
  }, opts.timeoutMs ?? 60_000);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
  }
}
