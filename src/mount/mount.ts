/**
 * mount(2) and umount2(2) through `bun:ffi` — mount(8) would turn a regular-file source into a
 * loop device, which then requires block devices for EROFS `device=` (docs/design.md §2.3).
 */
import { FFIType } from "bun:ffi";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { cstr, withLibc } from "../sys/index.ts";

/** mount(2) flags. */
export const MountFlags = {
  MS_RDONLY: 0x1,
  MS_NOSUID: 0x2,
  MS_NODEV: 0x4,
  MS_NOEXEC: 0x8,
  MS_BIND: 0x1000,
  MS_REC: 0x4000,
  MS_PRIVATE: 0x40000,
} as const;

/** umount2(2) flags. */
export const UmountFlags = { MNT_FORCE: 0x1, MNT_DETACH: 0x2, UMOUNT_NOFOLLOW: 0x8 } as const;

/** The kernel copies at most one page of mount data; longer option strings are cut off. */
export const MAX_MOUNT_DATA = 4095;

const ERRNO: Readonly<Record<number, [string, ErrorKind]>> = {
  1: ["EPERM", ErrorKind.PermissionDenied],
  2: ["ENOENT", ErrorKind.NotFound],
  5: ["EIO", ErrorKind.Internal],
  6: ["ENXIO", ErrorKind.NotFound],
  13: ["EACCES", ErrorKind.PermissionDenied],
  15: ["ENOTBLK", ErrorKind.InvalidArgument],
  16: ["EBUSY", ErrorKind.FailedPrecondition],
  19: ["ENODEV", ErrorKind.NotImplemented],
  20: ["ENOTDIR", ErrorKind.InvalidArgument],
  22: ["EINVAL", ErrorKind.InvalidArgument],
  24: ["EMFILE", ErrorKind.ResourceExhausted],
  36: ["ENAMETOOLONG", ErrorKind.InvalidArgument],
  38: ["ENOSYS", ErrorKind.NotImplemented],
  95: ["EOPNOTSUPP", ErrorKind.NotImplemented],
  117: ["EUCLEAN (filesystem corrupted)", ErrorKind.InvalidArgument],
};

const SYMBOLS = {
  mount: { args: [FFIType.cstring, FFIType.cstring, FFIType.cstring, FFIType.u64, FFIType.cstring], returns: FFIType.i32 },
  umount2: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
} as const;

function errnoError(errno: number, what: string): RafsnapError {
  const [name, kind] = ERRNO[errno] ?? [`errno ${errno}`, ErrorKind.Internal];
  return new RafsnapError(kind, `${what}: ${name}`);
}

/**
 * Calls mount(2). `data` is the filesystem option string (e.g. `device=/path/blob`), or null.
 *
 * Throws RafsnapError naming fstype, source and target: InvalidArgument when `data` is longer
 * than {@link MAX_MOUNT_DATA} (the kernel would silently cut it) or for EINVAL/ENOTDIR/
 * EUCLEAN; PermissionDenied for EPERM/EACCES; NotFound for ENOENT/ENXIO; FailedPrecondition
 * for EBUSY; NotImplemented for ENODEV (filesystem type unknown to the kernel); else Internal.
 */
export function mount(source: string, target: string, fstype: string, flags: number, data: string | null): void {
  const what = `mount ${fstype} ${source} on ${target}`;
  if (data !== null && Buffer.byteLength(data) > MAX_MOUNT_DATA) {
    throw new RafsnapError(ErrorKind.InvalidArgument, `${what}: option string of ${Buffer.byteLength(data)} bytes exceeds ${MAX_MOUNT_DATA}`);
  }
  // libc is bound per call: mounts are rare, and this keeps the module free of shared state.
  withLibc(SYMBOLS, (libc) => {
    const rc = libc.symbols.mount(cstr(source), cstr(target), cstr(fstype), flags, data === null ? null : cstr(data));
    if (rc !== 0) throw errnoError(libc.errno(), what);
  });
}

/**
 * Calls umount2(2) on `target` with {@link UmountFlags}.
 * Throws RafsnapError naming the target: NotFound when it is not a mount point (EINVAL) or does
 * not exist; FailedPrecondition when busy; PermissionDenied for EPERM; else Internal.
 */
export function umount(target: string, flags = 0): void {
  withLibc(SYMBOLS, (libc) => {
    if (libc.symbols.umount2(cstr(target), flags) === 0) return;
    const errno = libc.errno();
    if (errno === 22) throw new RafsnapError(ErrorKind.NotFound, `umount ${target}: not a mount point (EINVAL)`);
    throw errnoError(errno, `umount ${target}`);
  });
}
