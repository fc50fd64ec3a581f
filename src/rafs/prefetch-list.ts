/**
 * Prefetch lists: the paths of an image's startup working set, one absolute in-image path a
 * line (nydus-image's `--prefetch-files` convention), as `rafsnap prefetch-list` prints them
 * and `rafsnap convert --prefetch-files` / `rafsnap nydusd --prefetch-files` read them.
 */
import { readFileSync, statSync } from "node:fs";
import { invalidArgument } from "../errdefs/index.ts";

/** Most paths a list may hold; a longer list is refused (InvalidArgument). */
export const MAX_PREFETCH_PATHS = 1 << 16;
/** Longest path a list may hold, in characters (PATH_MAX). */
export const MAX_PREFETCH_PATH = 4096;
/** Deepest path a list may hold, in components (bounds the ancestor walk of {@link PrefetchMatcher}). */
const MAX_DEPTH = 256;

/**
 * Parses a prefetch list: one absolute path a line; blank lines and lines starting with `#`
 * are skipped, surrounding white space is trimmed, `//` and a trailing `/` are folded, and a
 * repeated path is kept once (at its first place). Returns the paths in list order.
 *
 * Throws InvalidArgument, naming `what` and the line, for a relative path, a `.` or `..`
 * component, a NUL, a path longer than {@link MAX_PREFETCH_PATH} or deeper than 256
 * components, or more than {@link MAX_PREFETCH_PATHS} paths. Paths the image does not have
 * are not an error here: the builder and the daemon skip them.
 */
export function parsePrefetchList(text: string, what: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === "" || line.startsWith("#")) continue;
    const at = `${what}:${i + 1}`;
    if (line.length > MAX_PREFETCH_PATH) throw invalidArgument(`${at}: path longer than ${MAX_PREFETCH_PATH} characters`);
    if (!line.startsWith("/")) throw invalidArgument(`${at}: ${JSON.stringify(line)} is not an absolute path`);
    if (line.includes("\0")) throw invalidArgument(`${at}: the path holds a NUL`);
    const parts = line.split("/").filter((p) => p !== "");
    if (parts.some((p) => p === "." || p === "..")) throw invalidArgument(`${at}: ${JSON.stringify(line)} has a . or .. component`);
    if (parts.length > MAX_DEPTH) throw invalidArgument(`${at}: path deeper than ${MAX_DEPTH} components`);
    const path = `/${parts.join("/")}`;
    if (seen.has(path)) continue;
    if (out.length >= MAX_PREFETCH_PATHS) throw invalidArgument(`${what}: more than ${MAX_PREFETCH_PATHS} paths`);
    seen.add(path);
    out.push(path);
  }
  return out;
}

/**
 * Which paths a prefetch list covers: a listed path and, when it names a directory, every
 * path below it (`--prefetch-patterns`). Paths are absolute or tar-relative (`usr/bin/x`,
 * `./usr/bin/x`); both are matched as absolute.
 */
export class PrefetchMatcher {
  private readonly paths: Set<string>;

  constructor(paths: readonly string[]) {
    this.paths = new Set(paths);
  }

  /** True when the list holds no path. */
  get empty(): boolean {
    return this.paths.size === 0;
  }

  /** True when `path` or one of its ancestors (not the root unless listed) is listed. */
  covers(path: string): boolean {
    if (this.paths.size === 0) return false;
    const parts = path.split("/").filter((p) => p !== "" && p !== ".");
    if (this.paths.has("/")) return true;
    let p = "";
    for (let i = 0; i < parts.length && i < MAX_DEPTH; i++) {
      p += `/${parts[i]}`;
      if (this.paths.has(p)) return true;
    }
    return false;
  }
}

/** Largest list file read: every path at its longest, plus its newline. */
const MAX_LIST_BYTES = MAX_PREFETCH_PATHS * (MAX_PREFETCH_PATH + 1);

/**
 * Reads the prefetch list file `path` ({@link parsePrefetchList}; `what` names it in errors,
 * e.g. the flag that gave it). Throws InvalidArgument for a file that is not regular, is
 * larger than any valid list can be, or holds a bad line; the errors of reading it as they come.
 */
export function readPrefetchListFile(path: string, what: string): string[] {
  const st = statSync(path);
  if (!st.isFile()) throw invalidArgument(`${what} ${path}: not a regular file`);
  if (st.size > MAX_LIST_BYTES) throw invalidArgument(`${what} ${path}: ${st.size} bytes, larger than a list of ${MAX_PREFETCH_PATHS} paths can be`);
  return parsePrefetchList(readFileSync(path, "utf8"), `${what} ${path}`);
}
