import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { socketAccepts } from "../../src/mount/index.ts";
import { type ChildProcess, type RunResult, run, spawnProcess, waitFor } from "../harness/process.ts";
import { requireBinary, SYSTEM_PATH } from "./binary.ts";
import { type SnapshotsClient, snapshotsClient } from "./snapshots-client.ts";

/** A `rafsnap serve` started by a test from the compiled binary. */
export interface RafsnapServer {
  root: string;
  socket: string;
  proc: ChildProcess;
  client: SnapshotsClient;
  /** SIGTERM (then SIGKILL after the grace period); resolves with the exit code. */
  stop(): Promise<number>;
}

/** Makes a fresh temp directory for one test; remove it with `rmSync(dir, {recursive:true})`. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `rafsnap-${prefix}-`));
}

/**
 * Starts `dist/rafsnap serve --root <root> --address <socket> --log-to-stdout` with a PATH of
 * system directories only, and waits for the socket. `root` defaults to `<dir>/root`, the
 * socket to `<dir>/s.sock`, the output (stdout and stderr) to `<dir>/rafsnap.log`. With
 * `configLogging` the two log flags are left out, so the config decides where the log goes.
 * Throws with the log tail when the process exits before the socket appears.
 */
export async function startRafsnap(
  dir: string,
  opts: { root?: string; args?: string[]; env?: Record<string, string>; configLogging?: boolean } = {},
): Promise<RafsnapServer> {
  const bin = requireBinary();
  const root = opts.root ?? join(dir, "root");
  const socket = join(dir, "s.sock");
  const proc = spawnProcess({
    cmd: [bin, "serve", "--root", root, "--address", socket, ...(opts.configLogging ? [] : ["--log-to-stdout", "--log-level", "debug"]), ...(opts.args ?? [])],
    logFile: join(dir, "rafsnap.log"),
    env: { PATH: SYSTEM_PATH, ...opts.env },
    stopTimeoutMs: 10_000,
  });
  try {
    // A stale socket file may already be there: wait until the server accepts connections.
    await waitFor(
      `${socket} accepting`,
      () => socketAccepts(socket),
      20_000,
      () => !proc.hasExited(),
    );
  } catch (e) {
    await proc.stop();
    throw new Error(`rafsnap did not come up: ${(e as Error).message}\n${proc.logTail()}`);
  }
  return { root, socket, proc, client: snapshotsClient(socket), stop: () => proc.stop() };
}

/** Removes a test directory (after its processes are stopped and mounts gone). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs the compiled binary with `args` (system PATH only, 20 s limit) to completion. */
export function rafsnapCli(args: string[]): Promise<RunResult> {
  return run([requireBinary(), ...args], { env: { PATH: SYSTEM_PATH }, timeoutMs: 20_000 });
}

/** A temp directory and the servers a test started in it. */
export interface Scratch {
  dir: string;
  /** Starts `rafsnap serve` in `dir` (see {@link startRafsnap}); stopped by {@link withScratch}. */
  start(opts?: { root?: string; args?: string[]; env?: Record<string, string> }): Promise<RafsnapServer>;
}

/**
 * Runs `fn` with a fresh temp directory, then — also when `fn` fails — stops every server it
 * started there (SIGTERM, then SIGKILL) and removes the directory.
 */
export async function withScratch<T>(prefix: string, fn: (s: Scratch) => Promise<T>): Promise<T> {
  const dir = tempDir(prefix);
  const servers: RafsnapServer[] = [];
  try {
    return await fn({
      dir,
      start: async (opts) => {
        const srv = await startRafsnap(dir, opts);
        servers.push(srv);
        return srv;
      },
    });
  } finally {
    for (const srv of servers) await srv.stop();
    removeDir(dir);
  }
}
