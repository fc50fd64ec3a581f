// Where the parts of the running program are, from source (`bun src/main.ts`) and in the
// compiled binary: the one place that knows the compiled layout.

/** True when running as the `bun build --compile` executable (modules live under `/$bunfs/`). */
export function isCompiledBinary(): boolean {
  return Bun.main.startsWith("/$bunfs/");
}

/**
 * The command that runs this program's subcommand `sub` (`["/usr/bin/rafsnap", "nydusd"]`):
 * the executable itself when compiled, bun with the entry script from source.
 */
export function selfCommand(sub: string): string[] {
  return isCompiledBinary() ? [process.execPath, sub] : [process.execPath, Bun.main, sub];
}

/**
 * The URL of the worker module `file` of the source folder `folder` (`"fuse"`,
 * `"reader-worker.ts"`), for `new Worker(...)` from a module of that folder whose
 * `import.meta.url` is `callerUrl`. From source it sits beside the caller; in the compiled
 * binary every module's `import.meta.url` is the executable's root (`file:///$bunfs/…`) and
 * workers are embedded at `./<folder>/<file>` (the entry points `scripts/build.ts` lists).
 */
export function workerUrl(callerUrl: string, folder: string, file: string): URL {
  return callerUrl.startsWith("file:///$bunfs/") ? new URL(`./${folder}/${file}`, callerUrl) : new URL(`./${file}`, callerUrl);
}
