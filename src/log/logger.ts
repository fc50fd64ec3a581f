import { appendFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { type Rotation, RotatingFile } from "./rotate.ts";
import { createConsola, LogLevels, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola";

/** Log levels accepted by `[log] level` and `--log-level` (nydus-snapshotter's names). */
export type LogLevelName = "trace" | "debug" | "info" | "warn" | "error";

export { LogLevels };

/** A tagged logger; use `logger.withTag("snapshot")` per module. */
export type Logger = ConsolaInstance;

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level: LogLevelName;
  /** Write to stdout instead of a file under `dir`. */
  toStdout: boolean;
  /** Directory of the log file (`nydus-snapshotter.log`, the Go snapshotter's name). */
  dir?: string;
  /** Full path of the log file instead of `<dir>/nydus-snapshotter.log` (nydusd's --log-file). */
  file?: string;
  /** Extra reporter, e.g. a capture reporter in tests. */
  reporter?: ConsolaReporter;
  /** Rotation of the log file (no effect on stdout); default: never rotate. */
  rotation?: Rotation;
  /**
   * The level can be changed while running ({@link setLogLevel}), for this logger and every
   * logger made from it (`withTag`), as nydusd's `PUT /api/v1/daemon` `log_level` does.
   * Costs a log record per call below the level (dropped by the reporter), so only daemons use it.
   */
  adjustable?: boolean;
}

/** Where an adjustable logger keeps its level: shared by every logger made from it. */
interface Threshold {
  level: number;
}

/** The names {@link LogLevelName} allows, for checking input. */
export const LOG_LEVEL_NAMES = ["trace", "debug", "info", "warn", "error"] as const satisfies readonly LogLevelName[];

/** True when `s` is a log level name. */
export function isLogLevelName(s: string): s is LogLevelName {
  return (LOG_LEVEL_NAMES as readonly string[]).includes(s);
}

const LEVEL: Record<LogLevelName, number> = {
  trace: LogLevels.trace,
  debug: LogLevels.debug,
  info: LogLevels.info,
  warn: LogLevels.warn,
  error: LogLevels.error,
};

/** Name of the log file under `[log] dir`, as the Go snapshotter names it. */
export const LOG_FILE = "nydus-snapshotter.log";

function formatArg(a: unknown): string {
  if (a instanceof Error) {
    const cause = a.cause instanceof Error ? `: ${a.cause.message}` : "";
    return `${a.message}${cause}`;
  }
  if (typeof a === "string") return a;
  try {
    return JSON.stringify(a);
  } catch {
    return String(a);
  }
}

/** One line per event: `time level [tag] message`, the shape a daemon's log wants. */
export function formatLine(obj: LogObject): string {
  const tag = obj.tag ? ` [${obj.tag}]` : "";
  const msg = obj.args.map(formatArg).join(" ");
  return `${obj.date.toISOString()} ${obj.type}${tag} ${msg}\n`;
}

/**
 * A reporter writing one line per event through `write`, which never throws into its caller
 * (a gRPC handler, a signal handler): a line that cannot be written — a full disk, a closed
 * pipe — goes to stderr instead (or is dropped when that fails too), and once writing works
 * again one line says how many were not written and why.
 */
export function lineReporter(write: (line: string) => void): ConsolaReporter {
  let missed = 0;
  let why = "";
  return {
    log: (obj) => {
      const line = formatLine(obj);
      try {
        if (missed > 0) {
          write(`${new Date().toISOString()} warn [log] ${missed} line(s) could not be written here (${why}); they went to stderr\n`);
          missed = 0;
        }
        write(line);
      } catch (e) {
        missed++;
        why = (e as NodeJS.ErrnoException).code ?? String((e as Error)?.message ?? e);
        try {
          process.stderr.write(line);
        } catch {
          // nowhere to write: dropped, and counted above
        }
      }
    },
  };
}

/**
 * Builds the process's root logger. With `toStdout` every event is one line on stdout;
 * otherwise lines are appended to `<dir>/nydus-snapshotter.log` or `file` (the directory is
 * created with mode 0700), rotated as `rotation` says. Throttling of repeated lines is switched off: a daemon's log must show
 * every event. Throws when the log directory cannot be created.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const reporters: ConsolaReporter[] = [];
  if (opts.toStdout || (!opts.dir && !opts.file)) {
    reporters.push(lineReporter((l) => process.stdout.write(l)));
  } else {
    const file = opts.file ?? join(opts.dir as string, LOG_FILE);
    if (opts.rotation) {
      const f = new RotatingFile(file, opts.rotation);
      reporters.push(lineReporter((l) => f.write(l)));
    } else {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      reporters.push(lineReporter((l) => appendFileSync(file, l, { mode: 0o600 })));
    }
  }
  if (opts.reporter) reporters.push(opts.reporter);
  if (!opts.adjustable) return createConsola({ level: LEVEL[opts.level], reporters, throttle: 0, throttleMin: 0 });
  // Loggers made with withTag copy consola's options, level included, but share the reporter
  // objects: the level lives with them, and consola lets everything through.
  const threshold: Threshold = { level: LEVEL[opts.level] };
  const gated = reporters.map((r): ConsolaReporter => ({ log: (ev, ctx) => (ev.level <= threshold.level ? r.log(ev, ctx) : undefined) }));
  return createConsola({ level: LogLevels.trace, reporters: gated, throttle: 0, throttleMin: 0, [THRESHOLD]: threshold } as Parameters<
    typeof createConsola
  >[0]);
}

const THRESHOLD = "rafsnapThreshold";

/**
 * Sets the level of `logger` — made by {@link createLogger} with `adjustable` — and of every
 * logger made from it, at once. A logger that is not adjustable changes alone.
 */
export function setLogLevel(logger: Logger, name: LogLevelName): void {
  const t = (logger.options as unknown as Record<string, Threshold | undefined>)[THRESHOLD];
  if (t) t.level = LEVEL[name];
  else logger.level = LEVEL[name];
}

/** A logger that drops everything (for tests and tools that want silence). */
export function silentLogger(): Logger {
  return createConsola({ level: LogLevels.silent, reporters: [] });
}
