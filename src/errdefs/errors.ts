/**
 * Error kinds, named after containerd's `errdefs` so that Go readers recognise them.
 *
 * Every error that crosses a module boundary is a {@link RafsnapError} carrying one of
 * these kinds; edges (gRPC, HTTP, CLI exit codes) translate the kind once, in one place.
 */
export const ErrorKind = {
  Unknown: "unknown",
  InvalidArgument: "invalid-argument",
  NotFound: "not-found",
  AlreadyExists: "already-exists",
  FailedPrecondition: "failed-precondition",
  Unavailable: "unavailable",
  NotImplemented: "not-implemented",
  Unauthenticated: "unauthenticated",
  PermissionDenied: "permission-denied",
  ResourceExhausted: "resource-exhausted",
  Aborted: "aborted",
  Canceled: "canceled",
  DeadlineExceeded: "deadline-exceeded",
  Internal: "internal",
  /** Bytes that cannot be trusted: a digest mismatch, a corrupt or cut body, a failed cache write. */
  DataLoss: "data-loss",
} as const;

/** One of the {@link ErrorKind} values. */
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

const KINDS = new Set<string>(Object.values(ErrorKind));

/**
 * The one error class of rafsnap. `kind` says what went wrong in containerd's vocabulary,
 * `message` names the key, digest, path or config field involved, and `cause` keeps the
 * underlying error.
 *
 * `instanceof` also accepts look-alike objects (same `name` and a known `kind`) so the check
 * survives a duplicated module copy, as connect-es does for `ConnectError`.
 */
export class RafsnapError extends Error {
  override readonly name = "RafsnapError";
  readonly kind: ErrorKind;

  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }

  static override [Symbol.hasInstance](v: unknown): v is RafsnapError {
    if (typeof v !== "object" || v === null) return false;
    const o = v as { name?: unknown; kind?: unknown };
    return o.name === "RafsnapError" && typeof o.kind === "string" && KINDS.has(o.kind);
  }
}

/** Builds an error of kind NotFound. */
export const notFound = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.NotFound, message, { cause });
/** Builds an error of kind AlreadyExists. */
export const alreadyExists = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.AlreadyExists, message, { cause });
/** Builds an error of kind InvalidArgument. */
export const invalidArgument = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.InvalidArgument, message, { cause });
/** Builds an error of kind FailedPrecondition. */
export const failedPrecondition = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.FailedPrecondition, message, { cause });
/** Builds an error of kind Unavailable. */
export const unavailable = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.Unavailable, message, { cause });
/** Builds an error of kind NotImplemented. */
export const notImplemented = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.NotImplemented, message, { cause });
/** Builds an error of kind DataLoss (readers get EIO; gRPC DATA_LOSS). */
export const dataLoss = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.DataLoss, message, { cause });
/** Builds an error of kind ResourceExhausted (a cap on what outside input may cost). */
export const resourceExhausted = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.ResourceExhausted, message, { cause });
/** Builds an error of kind Internal. */
export const internal = (message: string, cause?: unknown) => new RafsnapError(ErrorKind.Internal, message, { cause });

/**
 * Kinds of the OS's and SQLite's error codes, for errors that reach an edge without a kind
 * of ours. A missing or misplaced file (ENOENT, ENOTDIR, EEXIST…) is FailedPrecondition, never
 * NotFound: containerd reads NotFound as "no such snapshot", which a lost directory is not.
 * SQLite codes are matched on their primary code (`SQLITE_IOERR_WRITE` is `SQLITE_IOERR`).
 */
const CODE_KINDS: Record<string, ErrorKind> = {
  ENOSPC: ErrorKind.ResourceExhausted,
  EDQUOT: ErrorKind.ResourceExhausted,
  EMFILE: ErrorKind.ResourceExhausted,
  ENFILE: ErrorKind.ResourceExhausted,
  ENOMEM: ErrorKind.ResourceExhausted,
  SQLITE_FULL: ErrorKind.ResourceExhausted,
  SQLITE_NOMEM: ErrorKind.ResourceExhausted,
  EACCES: ErrorKind.PermissionDenied,
  EPERM: ErrorKind.PermissionDenied,
  SQLITE_PERM: ErrorKind.PermissionDenied,
  SQLITE_AUTH: ErrorKind.PermissionDenied,
  ENOENT: ErrorKind.FailedPrecondition,
  ENOTDIR: ErrorKind.FailedPrecondition,
  EISDIR: ErrorKind.FailedPrecondition,
  EEXIST: ErrorKind.FailedPrecondition,
  ENOTEMPTY: ErrorKind.FailedPrecondition,
  ELOOP: ErrorKind.FailedPrecondition,
  EXDEV: ErrorKind.FailedPrecondition,
  EBUSY: ErrorKind.FailedPrecondition,
  EROFS: ErrorKind.FailedPrecondition,
  SQLITE_READONLY: ErrorKind.FailedPrecondition,
  SQLITE_CONSTRAINT: ErrorKind.FailedPrecondition,
  EAGAIN: ErrorKind.Unavailable,
  EINTR: ErrorKind.Unavailable,
  ECONNREFUSED: ErrorKind.Unavailable,
  ECONNRESET: ErrorKind.Unavailable,
  EPIPE: ErrorKind.Unavailable,
  SQLITE_BUSY: ErrorKind.Unavailable,
  SQLITE_LOCKED: ErrorKind.Unavailable,
  ETIMEDOUT: ErrorKind.DeadlineExceeded,
  ENAMETOOLONG: ErrorKind.InvalidArgument,
  EINVAL: ErrorKind.InvalidArgument,
  ENOSYS: ErrorKind.NotImplemented,
  EOPNOTSUPP: ErrorKind.NotImplemented,
  ENOTSUP: ErrorKind.NotImplemented,
  ENODEV: ErrorKind.NotImplemented,
  EIO: ErrorKind.DataLoss,
  SQLITE_IOERR: ErrorKind.DataLoss,
  SQLITE_CORRUPT: ErrorKind.DataLoss,
  SQLITE_NOTADB: ErrorKind.DataLoss,
};

/** The kind of an OS or SQLite error code (`ENOSPC`, `SQLITE_IOERR_WRITE`), if it has one. */
export function kindOfCode(code: unknown): ErrorKind | undefined {
  if (typeof code !== "string") return undefined;
  return CODE_KINDS[code] ?? (code.startsWith("SQLITE_") ? CODE_KINDS[/^SQLITE_[A-Z]+/.exec(code)?.[0] ?? ""] : undefined);
}

/**
 * The kind of any thrown value: a {@link RafsnapError}'s own kind, else the kind of the first
 * OS or SQLite error code found walking `cause` ({@link kindOfCode}: a full filesystem is
 * ResourceExhausted, EACCES PermissionDenied, a missing file FailedPrecondition…), else
 * {@link ErrorKind.Unknown}.
 */
export function kindOf(err: unknown): ErrorKind {
  let cur: unknown = err;
  for (let depth = 0; depth < 8 && cur != null; depth++) {
    if (cur instanceof RafsnapError) return cur.kind;
    const kind = kindOfCode((cur as { code?: unknown }).code);
    if (kind) return kind;
    cur = (cur as { cause?: unknown }).cause;
  }
  return ErrorKind.Unknown;
}

/** True when `err` (or an error in its cause chain) is of kind `kind`. */
export function isKind(err: unknown, kind: ErrorKind): boolean {
  return kindOf(err) === kind;
}

/** True for NotFound errors. */
export const isNotFound = (err: unknown) => isKind(err, ErrorKind.NotFound);
/** True for AlreadyExists errors. */
export const isAlreadyExists = (err: unknown) => isKind(err, ErrorKind.AlreadyExists);
