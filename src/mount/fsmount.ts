/**
 * The new mount API (fsopen/fsconfig/fsmount/move_mount, glibc ≥ 2.36) through `bun:ffi`, for
 * EROFS images with more `device=` options than fit the one page mount(2) copies: each option
 * is a separate fsconfig call, so there is no length limit.
 */
import { FFIType } from "bun:ffi";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { cstr, openLibc } from "../sys/index.ts";

const FSOPEN_CLOEXEC = 1;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;
const FSMOUNT_CLOEXEC = 1;
const MOUNT_ATTR_RDONLY = 1;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
const AT_FDCWD = -100;

const SYMBOLS = {
  fsopen: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
  fsconfig: { args: [FFIType.i32, FFIType.u32, FFIType.cstring, FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  fsmount: { args: [FFIType.i32, FFIType.u32, FFIType.u32], returns: FFIType.i32 },
  move_mount: { args: [FFIType.i32, FFIType.cstring, FFIType.i32, FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
} as const;

/**
 * Mounts a read-only filesystem of type `fstype` from `source` at `target` with string
 * options `options` (key/value pairs, repeated keys allowed — e.g. one `device` per blob).
 * Throws RafsnapError naming the step, the option and the errno: NotImplemented when the
 * kernel has no new mount API (ENOSYS) or the type is unknown (ENODEV), InvalidArgument for a
 * rejected option or image (EINVAL, EUCLEAN), else Internal. Never leaves a half-made mount:
 * the filesystem context and mount descriptors are closed on every path.
 */
export function fsMountReadonly(fstype: string, source: string, target: string, options: [string, string][]): void {
  const lib = openLibc(SYMBOLS);
  const c = lib.symbols;
  const errno = lib.errno;
  const fail = (what: string) => {
    const e = errno();
    const kind =
      e === 38 || e === 19
        ? ErrorKind.NotImplemented
        : e === 22 || e === 117
          ? ErrorKind.InvalidArgument
          : e === 1
            ? ErrorKind.PermissionDenied
            : ErrorKind.Internal;
    return new RafsnapError(kind, `mount ${fstype} ${source} on ${target}: ${what}: errno ${e}`);
  };
  let fs = -1;
  let mnt = -1;
  try {
    fs = c.fsopen(cstr(fstype), FSOPEN_CLOEXEC);
    if (fs < 0) throw fail("fsopen");
    for (const [k, v] of [["source", source] as [string, string], ...options]) {
      if (c.fsconfig(fs, FSCONFIG_SET_STRING, cstr(k), cstr(v), 0) !== 0) throw fail(`fsconfig ${k}=${v}`);
    }
    if (c.fsconfig(fs, FSCONFIG_CMD_CREATE, null, null, 0) !== 0) throw fail("fsconfig create");
    mnt = c.fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
    if (mnt < 0) throw fail("fsmount");
    if (c.move_mount(mnt, cstr(""), AT_FDCWD, cstr(target), MOVE_MOUNT_F_EMPTY_PATH) !== 0) throw fail("move_mount");
  } finally {
    if (mnt >= 0) c.close(mnt);
    if (fs >= 0) c.close(fs);
    lib.close();
  }
}
