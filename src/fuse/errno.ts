import { ErrorKind, kindOf } from "../errdefs/index.ts";

/** Linux errno values the session answers with. */
export const Errno = {
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  ENOSYS: 38,
  ENODATA: 61,
  ETIMEDOUT: 110,
  ECANCELED: 125,
} as const;

/**
 * The errno for an error thrown by a filesystem method: the one place that maps our error
 * kinds to what a process reading the file sees. Anything unexpected is EIO.
 */
export function errnoOf(err: unknown): number {
  switch (kindOf(err)) {
    case ErrorKind.NotFound:
      return Errno.ENOENT;
    case ErrorKind.InvalidArgument:
      return Errno.EINVAL;
    case ErrorKind.PermissionDenied:
    case ErrorKind.Unauthenticated:
      return Errno.EACCES;
    case ErrorKind.NotImplemented:
      return Errno.ENOSYS;
    case ErrorKind.ResourceExhausted:
      return Errno.ENOSPC;
    case ErrorKind.DeadlineExceeded:
      return Errno.ETIMEDOUT;
    case ErrorKind.Canceled:
      return Errno.ECANCELED;
    case ErrorKind.DataLoss:
      return Errno.EIO;
    default:
      return Errno.EIO;
  }
}
