// Cleanup for root tests: mounts under our directories, our processes, our temp directories,
// undone in reverse order even when a test fails.
import { afterAll } from "bun:test";
import { mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One line of `/proc/self/mountinfo` (proc(5)), with octal escapes decoded. */
export interface MountInfo {
  id: number;
  parentId: number;
  /** Root of the mount within its filesystem (field 4). */
  root: string;
  /** Mount point (field 5). */
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-superblock options (last field). */
  superOptions: string;
}

/** Decodes mountinfo's `\040`-style octal escapes (space, tab, newline, backslash). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses mountinfo text (default: `/proc/self/mountinfo`) in kernel order (parents first). */
export function readMountInfo(text = readFileSync("/proc/self/mountinfo", "utf8")): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const f = pre.split(" ");
    const g = post.split(" ");
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      root: unescapeMount(f[3] ?? ""),
      mountPoint: unescapeMount(f[4] ?? ""),
      fsType: g[0] ?? "",
      source: unescapeMount(g[1] ?? ""),
      superOptions: g[2] ?? "",
    });
  }
  return out;
}

/** Canonical path of `dir` (symlinks resolved) or `dir` itself when it does not exist. */
function canonical(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir.replace(/\/+$/, "") || "/";
  }
}

/** Mounts whose mount point is `dir` or below it, deepest (and most recent) first. */
export function mountsUnder(dir: string, mounts = readMountInfo()): MountInfo[] {
  const base = canonical(dir);
  if (base === "/") throw new Error("refusing to consider every mount under /");
  const hits = mounts.map((m, order) => ({ m, order })).filter(({ m }) => m.mountPoint === base || m.mountPoint.startsWith(`${base}/`));
  hits.sort((a, b) => b.m.mountPoint.split("/").length - a.m.mountPoint.split("/").length || b.order - a.order);
  return hits.map((h) => h.m);
}

/**
 * Unmounts everything mounted at or below `dir`, deepest first. A mount that refuses
 * (EBUSY) is detached lazily (`umount -l`). Repeats until nothing is left or no progress is made.
 * @returns the mount points unmounted, in order; throws when some remain.
 */
export function unmountUnder(dir: string): string[] {
  const done: string[] = [];
  for (let round = 0; round < 10; round++) {
    const left = mountsUnder(dir);
    if (left.length === 0) return done;
    for (const m of left) {
      const plain = Bun.spawnSync(["umount", m.mountPoint], { stdout: "ignore", stderr: "pipe" });
      if (plain.exitCode === 0) {
        done.push(m.mountPoint);
        continue;
      }
      const lazy = Bun.spawnSync(["umount", "-l", m.mountPoint], { stdout: "ignore", stderr: "pipe" });
      if (lazy.exitCode === 0) done.push(m.mountPoint);
    }
  }
  const left = mountsUnder(dir);
  if (left.length) throw new Error(`still mounted under ${dir}: ${left.map((m) => m.mountPoint).join(", ")}`);
  return done;
}

/**
 * Removes `dir` recursively, but only after unmounting everything below it, so `rm -rf` can never
 * reach into a filesystem that is not ours. Missing directories are fine.
 */
export function removeTree(dir: string): void {
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** A cleanup step: a label for error messages and the function itself. */
interface Step {
  label: string;
  fn: () => unknown;
}

/**
 * LIFO stack of cleanup steps. Every step runs even when earlier ones throw; errors are collected
 * and rethrown together at the end, so a failing cleanup is visible but cannot hide the others.
 *
 * @example
 * ```ts
 * const cleanup = useCleanup(); // registers afterAll(() => cleanup.run())
 * const dir = cleanup.tempDir("e2e-");
 * const reg = cleanup.add("registry", await startRegistry(dir)); // anything with stop()
 * ```
 */
export class Cleanup {
  readonly #steps: Step[] = [];
  #running: Promise<void> | undefined;

  /** Registers `fn` to run at cleanup time (last registered runs first). */
  defer(label: string, fn: () => unknown): void {
    this.#steps.push({ label, fn });
  }

  /** Registers `resource.stop()` and returns the resource, for inline use. */
  add<T extends { stop(): unknown }>(label: string, resource: T): T {
    this.defer(label, () => resource.stop());
    return resource;
  }

  /**
   * Creates a fresh directory under the system temp dir (or `parent`) and registers its removal
   * (unmounting anything below it first). Set `RAFSNAP_KEEP_TMP=1` to keep it for debugging.
   */
  tempDir(prefix = "rafsnap-", parent = tmpdir()): string {
    const dir = mkdtempSync(join(parent, prefix));
    this.defer(`remove ${dir}`, () => {
      if (process.env.RAFSNAP_KEEP_TMP === "1") {
        unmountUnder(dir);
        console.error(`[cleanup] kept ${dir}`);
        return;
      }
      removeTree(dir);
    });
    return dir;
  }

  /** Runs all steps in reverse order once; later calls wait for the first run. */
  run(): Promise<void> {
    this.#running ??= (async () => {
      const errors: unknown[] = [];
      while (this.#steps.length) {
        const step = this.#steps.pop() as Step;
        try {
          await step.fn();
        } catch (err) {
          errors.push(new Error(`cleanup step "${step.label}" failed: ${(err as Error)?.message ?? err}`, { cause: err }));
        }
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length) throw new AggregateError(errors, `${errors.length} cleanup steps failed`);
    })();
    return this.#running;
  }
}

/** A {@link Cleanup} whose `run()` is registered with bun:test's `afterAll` of the current scope. */
export function useCleanup(): Cleanup {
  const cleanup = new Cleanup();
  afterAll(() => cleanup.run());
  return cleanup;
}

/**
 * Runs `fn` with a fresh {@link Cleanup} and always runs the cleanup afterwards (try/finally).
 * When both `fn` and the cleanup fail, the error of `fn` wins and the cleanup error is logged.
 */
export async function withCleanup<T>(fn: (cleanup: Cleanup) => Promise<T> | T): Promise<T> {
  const cleanup = new Cleanup();
  let failed = false;
  try {
    return await fn(cleanup);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    try {
      await cleanup.run();
    } catch (err) {
      // biome-ignore lint/correctness/noUnsafeFinally: a cleanup that fails fails a test that passed
      if (!failed) throw err;
      console.error("[cleanup] after a failure:", err);
    }
  }
}
