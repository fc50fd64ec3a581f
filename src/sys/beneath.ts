/**
 * Opening files that came from image layers. containerd unpacks a layer's symlinks, FIFOs and
 * devices as they are, so a path inside a snapshot is attacker-shaped: `image/image.boot` may
 * be a link to another tenant's snapshot, to `/etc/shadow` or to `/dev/zero`. Everything here
 * opens such paths relative to a trusted root directory without following any symlink
 * (`openat2` with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_NO_XDEV; on kernels without openat2, one `openat(O_NOFOLLOW)` per component), never
 * blocks on a FIFO (O_NONBLOCK), and accepts only regular files up to a size cap.
 *
 * Errors never carry what was found behind a refused path (its size, its content, the target
 * of a link): only the relative path and the rule it broke.
 */
import { FFIType, ptr } from "bun:ffi";
import { closeSync, fstatSync, readSync } from "node:fs";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { cstr, type Libc, openLibc } from "./libc.ts";

const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_NOCTTY = 0o400;
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const RESOLVE_NO_XDEV = 0x01;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_NO_SYMLINKS = 0x04;
const RESOLVE_BENEATH = 0x08;
/** openat2's number: the same on every architecture (allocated after the unification). */
const SYS_OPENAT2 = 437;

const ENOENT = 2;
const ENOSYS = 38;
const ELOOP = 40;
const EXDEV = 18;
const ENOTDIR = 20;

const SYMBOLS = {
  syscall: { args: [FFIType.i64, FFIType.i64, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  openat: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
  open: { args: [FFIType.ptr, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
} as const;

/** A regular file opened from a layer: its descriptor (close it) and size. */
export interface LayerFile {
  fd: number;
  size: number;
  /** The path relative to the root, as asked. */
  rel: string;
}

/** Why {@link openBeneath} refused a path (the error's `reason`). */
export type RefusedBecause = "missing" | "link" | "not-regular" | "too-large";

/** A path refused by {@link openBeneath}: kind NotFound for "missing", else FailedPrecondition. */
export class LayerFileError extends RafsnapError {
  constructor(
    readonly rel: string,
    readonly reason: RefusedBecause,
    message: string,
  ) {
    super(reason === "missing" ? ErrorKind.NotFound : ErrorKind.FailedPrecondition, message);
  }

  /** Only errors made here (RafsnapError's own check accepts every error of a known kind). */
  static override [Symbol.hasInstance](v: unknown): v is LayerFileError {
    return RafsnapError[Symbol.hasInstance](v) && typeof (v as { reason?: unknown }).reason === "string" && typeof (v as { rel?: unknown }).rel === "string";
  }
}

function refused(rel: string, reason: RefusedBecause, what: string, maxBytes?: number): LayerFileError {
  const rule =
    reason === "missing"
      ? "is missing"
      : reason === "link"
        ? "goes through a symbolic link (or leaves the layer); files of a layer are opened without following links"
        : reason === "not-regular"
          ? "is not a regular file"
          : `is larger than the ${maxBytes}-byte limit`;
  return new LayerFileError(rel, reason, `${what} ${rel} ${rule}`);
}

/**
 * Opens `rel` (a relative path, no `..`) beneath the trusted directory `root` read-only,
 * refusing any symlink on the way (the last component included), any `..` or mount crossing,
 * and anything but a regular file of at most `maxBytes`. `what` names the file in errors
 * ("image docker.io/x:1 bootstrap"). Throws {@link LayerFileError} (NotFound when the path does
 * not exist, FailedPrecondition for a link, a special file or an oversized file), or
 * RafsnapError Internal when `root` itself cannot be opened. The caller closes `fd`.
 */
export function openBeneath(root: string, rel: string, what: string, maxBytes: number): LayerFile {
  if (rel === "" || rel.startsWith("/") || rel.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw refused(rel, "link", what);
  }
  const lib = openLibc(SYMBOLS);
  const c = lib.symbols;
  const errno = lib.errno;
  let fd = -1;
  try {
    const rootFd = c.open(cstr(root), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (rootFd < 0) throw new RafsnapError(ErrorKind.Internal, `${what}: cannot open the directory ${root}: errno ${errno()}`);
    try {
      fd = openat2(c, errno, rootFd, rel);
    } finally {
      c.close(rootFd);
    }
    if (fd < 0) {
      const e = -fd;
      throw refused(rel, e === ENOENT ? "missing" : e === ELOOP || e === EXDEV || e === ENOTDIR ? "link" : "not-regular", what);
    }
    const out = reopen(c, errno, fd, rel, what, maxBytes);
    return out;
  } finally {
    if (fd >= 0) closeSync(fd);
    lib.close();
  }
}

/**
 * Checks the O_PATH descriptor `pathFd` (a regular file of at most `maxBytes`) and opens that
 * very inode for reading through its own magic link; `pathFd` stays the caller's to close.
 */
function reopen(c: Fns, errno: () => number, pathFd: number, rel: string, what: string, maxBytes: number): LayerFile {
  const st = fstatSync(pathFd);
  if (st.isSymbolicLink()) throw refused(rel, "link", what);
  if (!st.isFile()) throw refused(rel, "not-regular", what);
  if (st.size > maxBytes) throw refused(rel, "too-large", what, maxBytes);
  const io = c.open(cstr(`/proc/self/fd/${pathFd}`), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
  if (io < 0) throw new RafsnapError(ErrorKind.Internal, `${what} ${rel}: cannot reopen it for reading: errno ${errno()}`);
  return { fd: io, size: st.size, rel };
}

type Fns = Libc<typeof SYMBOLS>["symbols"];

/**
 * An O_PATH descriptor of `rel` beneath `dirFd` (openat2; the per-component fallback where the
 * kernel lacks it): nothing is opened for I/O yet, so a device node or FIFO has no effect.
 * -errno on failure.
 */
function openat2(c: Fns, errno: () => number, dirFd: number, rel: string): number {
  const flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  const how = new BigUint64Array([BigInt(flags), 0n, BigInt(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)]);
  const path = cstr(rel);
  const r = Number(c.syscall(SYS_OPENAT2, dirFd, ptr(path), ptr(how), 24));
  if (r >= 0) return r;
  const e = errno();
  if (e !== ENOSYS) return -e;
  // No openat2 (Linux < 5.6): walk the components, none of them may be a link.
  const parts = rel.split("/");
  let cur = dirFd;
  try {
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      const next = c.openat(cur, cstr(parts[i] as string), last ? flags : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
      if (next < 0) return -errno();
      if (cur !== dirFd) c.close(cur);
      cur = next;
    }
    const out = cur;
    cur = dirFd;
    return out;
  } finally {
    if (cur !== dirFd) c.close(cur);
  }
}

/**
 * Reads a file opened by {@link openBeneath}: the whole of it (bounded by the size found
 * then; a file that grew is read only to that size), or its first `upTo` bytes. Throws as
 * `readSync`.
 */
export function readLayerFile(f: LayerFile, upTo = f.size): Uint8Array {
  const size = Math.min(f.size, upTo);
  const out = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const n = readSync(f.fd, out, done, size - done, done);
    if (n <= 0) break;
    done += n;
  }
  return done === size ? out : out.subarray(0, done);
}

/**
 * {@link openBeneath} + {@link readLayerFile} + close: the bytes (the first `upTo` of them,
 * when given) of a regular file of at most `maxBytes` beneath `root`. Errors as those.
 */
export function readBeneath(root: string, rel: string, what: string, maxBytes: number, upTo?: number): Uint8Array {
  const f = openBeneath(root, rel, what, maxBytes);
  try {
    return readLayerFile(f, upTo);
  } finally {
    closeSync(f.fd);
  }
}

/**
 * Opens `path` (a path the operator or the snapshotter gave, whose directories are trusted)
 * read-only without blocking on a FIFO, and accepts only a regular file of at most `maxBytes`.
 * The last component may be a link: callers that must refuse links use {@link openBeneath}.
 * Throws {@link LayerFileError} as that (naming `path`).
 */
export function openRegular(path: string, what: string, maxBytes: number): LayerFile {
  const lib = openLibc(SYMBOLS);
  const c = lib.symbols;
  const errno = lib.errno;
  let fd = -1;
  try {
    fd = c.open(cstr(path), O_PATH | O_CLOEXEC, 0);
    if (fd < 0) {
      const e = errno();
      throw refused(path, e === ENOENT ? "missing" : e === ELOOP ? "link" : "not-regular", what);
    }
    const out = reopen(c, errno, fd, path, what, maxBytes);
    return out;
  } finally {
    if (fd >= 0) closeSync(fd);
    lib.close();
  }
}

/**
 * A path naming the open file `fd` of this process for programs and syscalls that take a path
 * (mount sources, losetup): `/proc/<pid>/fd/<fd>`. The kernel resolves it to the very file
 * opened, whatever happens to the original path meanwhile.
 */
export function fdPath(fd: number): string {
  return `/proc/${process.pid}/fd/${fd}`;
}
