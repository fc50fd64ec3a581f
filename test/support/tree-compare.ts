// Whole-tree comparison for tests: every path's type, mode, owner, size, content hash, symlink
// target, device number, hard-link group and xattrs, without following symlinks. A manifest of
// one tree can be computed once and compared against several others (source vs served trees).
import { dlopen, FFIType, read } from "bun:ffi";
import { lstatSync, readdirSync, readlinkSync } from "node:fs";

/** File type of a path, from `st_mode & S_IFMT`. */
export type EntryType = "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";

/** What {@link treeManifest} records for one path. */
export interface PathRecord {
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only (a directory's `st_size` depends on the filesystem). */
  size?: number;
  /** Hex sha256 of a regular file's content. */
  sha256?: string;
  /** Symlinks only: the link's target, as stored. */
  target?: string;
  /** Character and block devices only: `MAJOR:MINOR`. */
  rdev?: string;
  /** Extended attributes: name → value as hex, names sorted. Empty when there are none. */
  xattrs: Record<string, string>;
  /**
   * Hard-link group: every path of this tree (not ignored) that shares this inode, sorted,
   * this one included. Only set for groups of two or more.
   */
  links?: string[];
  /** Modification time in nanoseconds. Recorded for layer diffs, never compared here. */
  mtimeNs: bigint;
}

/** Path (`/` for the root, `/etc/passwd` below it) → record, in walk order (parents first). */
export type TreeManifest = Map<string, PathRecord>;

/**
 * Paths to leave out: a string is that path and everything below it (`/proc`), a RegExp is
 * tested against the path, a function decides.
 */
export type PathFilter = string | RegExp | ((path: string) => boolean);

/** Options of {@link treeManifest} and {@link compareTrees}. */
export interface ManifestOptions {
  /** Paths not recorded (and not walked into). */
  ignore?: PathFilter[];
  /** Files hashed at once; default 16 (parallel reads help lazily served trees most). */
  concurrency?: number;
}

const S_IFMT = 0o170000;
const TYPES: Record<number, EntryType> = {
  0o100000: "file",
  0o040000: "dir",
  0o120000: "symlink",
  0o020000: "char",
  0o060000: "block",
  0o010000: "fifo",
  0o140000: "socket",
};
const ENODATA = 61;
const ERANGE = 34;
const ENOTSUP = 95;
/** Files up to this size are read whole; bigger ones are streamed through the hasher. */
const WHOLE_READ = 8 << 20;

/** A predicate for `ignore` (false for every path when the list is empty). */
export function pathMatcher(filters: PathFilter[] = []): (path: string) => boolean {
  const tests = filters.map((f): ((p: string) => boolean) => {
    if (typeof f === "function") return f;
    if (f instanceof RegExp) return (p) => f.test(p);
    const base = f === "/" ? "" : f.replace(/\/+$/, "");
    return (p) => p === f || p === base || p.startsWith(`${base}/`);
  });
  return (p) => tests.some((t) => t(p));
}

/** Hex sha256 of a file's content (read whole when small, streamed otherwise). */
export async function sha256File(path: string, size?: number): Promise<string> {
  const file = Bun.file(path);
  const hasher = new Bun.CryptoHasher("sha256");
  if ((size ?? file.size) <= WHOLE_READ) return hasher.update(await file.bytes()).digest("hex");
  for await (const chunk of file.stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

/** `MAJOR:MINOR` of a Linux `dev_t` (glibc's encoding). */
function devString(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/**
 * `llistxattr`/`lgetxattr` through bun:ffi, never following symlinks. `close()` unloads libc.
 * A filesystem without xattr support (ENOTSUP) reads as having none.
 */
function xattrReader() {
  const { symbols: c, close } = dlopen("libc.so.6", {
    llistxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    lgetxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
  const errnoPtr = c.__errno_location();
  const errno = (): number => (errnoPtr ? read.i32(errnoPtr, 0) : 0);
  const cstr = (s: string) => Buffer.from(`${s}\0`);
  /** Calls `call(buf, size)` with a growing buffer until the value fits; null on `nullOn` errno. */
  const sized = (what: string, call: (buf: Buffer | null, size: number) => number, nullOn: number[]): Buffer | null => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const need = call(null, 0);
      if (need < 0) {
        const e = errno();
        if (nullOn.includes(e)) return null;
        throw new Error(`${what}: errno ${e}`);
      }
      if (need === 0) return Buffer.alloc(0);
      const buf = Buffer.alloc(need);
      const got = call(buf, need);
      if (got >= 0) return buf.subarray(0, got);
      const e = errno();
      if (e !== ERANGE) {
        if (nullOn.includes(e)) return null;
        throw new Error(`${what}: errno ${e}`);
      }
    }
    throw new Error(`${what}: the value kept growing`);
  };
  return {
    /** name → hex value, names sorted. */
    read(path: string): Record<string, string> {
      const p = cstr(path);
      const list = sized(`llistxattr ${path}`, (b, n) => Number(c.llistxattr(p, b, n)), [ENOTSUP]);
      const out: Record<string, string> = {};
      if (!list || list.length === 0) return out;
      const names = list.toString("utf8").split("\0").filter(Boolean).sort();
      for (const name of names) {
        const nm = cstr(name);
        const value = sized(`lgetxattr ${path} ${name}`, (b, n) => Number(c.lgetxattr(p, nm, b, n)), [ENODATA, ENOTSUP]);
        if (value) out[name] = value.toString("hex");
      }
      return out;
    },
    close,
  };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Entry names of `dir`, sorted; throws on a name that is not UTF-8 (it could not round-trip). */
function listDir(dir: string): string[] {
  return readdirSync(dir, { encoding: "buffer" })
    .map((raw) => {
      try {
        return utf8.decode(raw);
      } catch {
        throw new Error(`${dir}: entry name ${JSON.stringify(raw.toString("latin1"))} is not UTF-8; tree-compare handles UTF-8 names only`);
      }
    })
    .sort();
}

/**
 * Walks `root` (never following symlinks, not even `root` itself when it is one) and records
 * every path: type, mode, owner, size and sha256 of regular files, symlink targets, device
 * numbers, xattrs and hard-link groups.
 */
export async function treeManifest(root: string, opts: ManifestOptions = {}): Promise<TreeManifest> {
  const ignored = pathMatcher(opts.ignore);
  const out: TreeManifest = new Map();
  const inodes = new Map<string, string[]>();
  const files: [string, string, PathRecord][] = [];
  const xattrs = xattrReader();
  try {
    const stack: string[] = ["/"];
    while (stack.length) {
      const rel = stack.pop() as string;
      const abs = rel === "/" ? root : root + rel;
      const st = lstatSync(abs, { bigint: true });
      const mode = Number(st.mode);
      const type = TYPES[mode & S_IFMT];
      if (!type) throw new Error(`${abs}: unknown file type ${(mode & S_IFMT).toString(8)}`);
      const rec: PathRecord = { type, mode: mode & 0o7777, uid: Number(st.uid), gid: Number(st.gid), xattrs: xattrs.read(abs), mtimeNs: st.mtimeNs };
      if (type === "file") {
        rec.size = Number(st.size);
        files.push([rel, abs, rec]);
      } else if (type === "symlink") {
        rec.target = readlinkSync(abs, "utf8");
      } else if (type === "char" || type === "block") {
        rec.rdev = devString(st.rdev);
      }
      if (type !== "dir" && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const group = inodes.get(key);
        if (group) group.push(rel);
        else inodes.set(key, [rel]);
      }
      out.set(rel, rec);
      if (type === "dir") {
        const prefix = rel === "/" ? "/" : `${rel}/`;
        const children = listDir(abs)
          .map((n) => prefix + n)
          .filter((p) => !ignored(p));
        for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as string);
      }
    }
  } finally {
    xattrs.close();
  }
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    const sorted = [...group].sort();
    for (const p of group) (out.get(p) as PathRecord).links = sorted;
  }
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const [, abs, rec] = files[next++] as [string, string, PathRecord];
      rec.sha256 = await sha256File(abs, rec.size);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 16) }, worker));
  return out;
}

const octal = (m: number) => m.toString(8).padStart(4, "0");
const show = (v: unknown) => (v === undefined ? "(none)" : Array.isArray(v) ? `[${v.join(", ")}]` : String(v));

/**
 * Differences between two manifests as readable lines, sorted by path: `PATH: missing`,
 * `PATH: unexpected TYPE`, or `PATH: FIELD expected X, got Y` (a type change reports only the
 * type). Paths matching `ignore` are left out, also from hard-link groups. Mtimes are never
 * compared.
 */
export function compareManifests(expected: TreeManifest, actual: TreeManifest, opts: { ignore?: PathFilter[] } = {}): string[] {
  const ignored = pathMatcher(opts.ignore);
  const paths = [...new Set([...expected.keys(), ...actual.keys()])].filter((p) => !ignored(p)).sort();
  const links = (r: PathRecord) => {
    const kept = r.links?.filter((p) => !ignored(p));
    return kept && kept.length > 1 ? kept : undefined;
  };
  const out: string[] = [];
  for (const p of paths) {
    const e = expected.get(p);
    const a = actual.get(p);
    if (!a) {
      out.push(`${p}: missing (expected ${e?.type})`);
      continue;
    }
    if (!e) {
      out.push(`${p}: unexpected ${a.type}`);
      continue;
    }
    if (e.type !== a.type) {
      out.push(`${p}: type expected ${e.type}, got ${a.type}`);
      continue;
    }
    const field = (name: string, x: unknown, y: unknown) => {
      if (JSON.stringify(x) !== JSON.stringify(y)) out.push(`${p}: ${name} expected ${show(x)}, got ${show(y)}`);
    };
    field("mode", octal(e.mode), octal(a.mode));
    field("uid", e.uid, a.uid);
    field("gid", e.gid, a.gid);
    field("size", e.size, a.size);
    field("sha256", e.sha256, a.sha256);
    field("symlink target", e.target, a.target);
    field("rdev", e.rdev, a.rdev);
    field("hard links", links(e), links(a));
    for (const name of [...new Set([...Object.keys(e.xattrs), ...Object.keys(a.xattrs)])].sort()) {
      const hex = (v: string | undefined) => (v === undefined ? undefined : `0x${v}`);
      field(`xattr ${name}`, hex(e.xattrs[name]), hex(a.xattrs[name]));
    }
  }
  return out;
}

/** {@link treeManifest} of both trees (in parallel), then {@link compareManifests}. */
export async function compareTrees(expected: string, actual: string, opts: ManifestOptions = {}): Promise<string[]> {
  const [e, a] = await Promise.all([treeManifest(expected, opts), treeManifest(actual, opts)]);
  return compareManifests(e, a, opts);
}
