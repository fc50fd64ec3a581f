/**
 * Whether a filesystem fills in `d_type` for directory entries. overlayfs needs it, so like
 * containerd's overlay snapshotter (`fs.SupportsDType` in containerd/continuity,
 * `fs/dtype_linux.go`) we refuse to run on a root without it.
 *
 * Bun's `readdir({ withFileTypes: true })` cannot answer this: when the kernel reports
 * DT_UNKNOWN it quietly falls back to lstat and returns the real type (checked on an ext2
 * filesystem made with `mkfs.ext2 -O ^filetype`). So the entries are read through libc's
 * `readdir(3)` with `bun:ffi`, and `d_type` is read from the raw `struct dirent`.
 */
import { CString, FFIType, read } from "bun:ffi";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { failedPrecondition, internal, notFound, notImplemented } from "../errdefs/index.ts";
import { cstr, openLibc } from "../sys/index.ts";

/** `DT_UNKNOWN` from <dirent.h>. */
const DT_UNKNOWN = 0;
/**
 * `struct dirent` on 64-bit Linux, the same in glibc and musl on x86_64 and aarch64:
 * d_ino u64 @0, d_off i64 @8, d_reclen u16 @16, d_type u8 @18, d_name @19.
 */
const D_TYPE_OFFSET = 18;
const D_NAME_OFFSET = 19;
const LIBC_SYMBOLS = {
  opendir: { args: [FFIType.ptr], returns: FFIType.ptr },
  readdir: { args: [FFIType.ptr], returns: FFIType.ptr },
  closedir: { args: [FFIType.ptr], returns: FFIType.i32 },
} as const;

/**
 * True when the filesystem holding `dir` reports `d_type` in directory entries.
 *
 * It creates a probe directory `dir/.rafsnap-dtype-XXXXXX` holding a file and a directory,
 * reads the probe's entries with libc `readdir(3)`, and answers false if either entry says
 * DT_UNKNOWN. The probe is always removed. Call it once at start-up: it loads libc through
 * `bun:ffi` on every call.
 *
 * @throws RafsnapError NotFound when `dir` does not exist; FailedPrecondition when the probe
 *   cannot be created (read-only filesystem, no permission, `dir` not a directory);
 *   NotImplemented off 64-bit Linux (x64, arm64) or when no libc can be loaded; Internal
 *   when the probe's entries cannot be read or it cannot be removed.
 */
export async function checkDType(dir: string): Promise<boolean> {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    throw notImplemented(`d_type check: unsupported platform ${process.platform}/${process.arch}`);
  }
  let probe: string;
  try {
    probe = await mkdtemp(join(dir, ".rafsnap-dtype-"));
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === "ENOENT") throw notFound(`d_type check: ${dir} does not exist`, err);
    throw failedPrecondition(`d_type check: cannot create a probe in ${dir}: ${String(code ?? err)}`, err);
  }
  let removed = false;
  try {
    await writeFile(join(probe, "file"), "");
    await mkdir(join(probe, "dir"));
    const types = readEntryTypes(probe);
    const file = types.get("file");
    const sub = types.get("dir");
    if (file === undefined || sub === undefined) {
      throw internal(`d_type check: readdir(3) of ${probe} did not return the probe entries`);
    }
    const supported = file !== DT_UNKNOWN && sub !== DT_UNKNOWN;
    await rm(probe, { recursive: true, force: true });
    removed = true;
    return supported;
  } finally {
    // On the error paths; a failure here must not hide the original error.
    if (!removed) await rm(probe, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Entry name → raw `d_type`, from libc `opendir`/`readdir`/`closedir`. */
function readEntryTypes(path: string): Map<string, number> {
  const libc = openLibc(LIBC_SYMBOLS);
  try {
    const dirp = libc.symbols.opendir(cstr(path));
    if (dirp === null) throw internal(`d_type check: opendir(3) failed on ${path}`);
    try {
      const types = new Map<string, number>();
      for (let ent = libc.symbols.readdir(dirp); ent !== null; ent = libc.symbols.readdir(dirp)) {
        types.set(new CString(ent, D_NAME_OFFSET).toString(), read.u8(ent, D_TYPE_OFFSET));
      }
      return types;
    } finally {
      libc.symbols.closedir(dirp);
    }
  } finally {
    libc.close();
  }
}
