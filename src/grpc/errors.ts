import { status, type ServiceError, Metadata } from "@grpc/grpc-js";
import { ErrorKind, kindOf, RafsnapError } from "../errdefs/index.ts";

/**
 * The one mapping from our error kinds to gRPC status codes, the codes containerd's
 * `errgrpc.ToGRPC` uses for its errdefs (containerd turns them back into errdefs on its
 * side; its unpacker depends on AlreadyExists and NotFound being exact). Errors that carry
 * no kind become UNKNOWN, as containerd does.
 */
const CODE: Record<ErrorKind, status> = {
  [ErrorKind.Unknown]: status.UNKNOWN,
  [ErrorKind.InvalidArgument]: status.INVALID_ARGUMENT,
  [ErrorKind.NotFound]: status.NOT_FOUND,
  [ErrorKind.AlreadyExists]: status.ALREADY_EXISTS,
  [ErrorKind.FailedPrecondition]: status.FAILED_PRECONDITION,
  [ErrorKind.Unavailable]: status.UNAVAILABLE,
  [ErrorKind.NotImplemented]: status.UNIMPLEMENTED,
  [ErrorKind.Unauthenticated]: status.UNAUTHENTICATED,
  [ErrorKind.PermissionDenied]: status.PERMISSION_DENIED,
  [ErrorKind.ResourceExhausted]: status.RESOURCE_EXHAUSTED,
  [ErrorKind.Aborted]: status.ABORTED,
  [ErrorKind.Canceled]: status.CANCELLED,
  [ErrorKind.DeadlineExceeded]: status.DEADLINE_EXCEEDED,
  [ErrorKind.Internal]: status.INTERNAL,
  [ErrorKind.DataLoss]: status.DATA_LOSS,
};

/** The gRPC status code for any thrown value. */
export function codeOf(err: unknown): status {
  return CODE[kindOf(err)];
}

/**
 * Turns any thrown value into the status error grpc-js sends: code and message. An error
 * that is not one of ours (raw errno or SQLite text) gets `context` in front — the call and
 * the key it was about — so no bare "ENOENT: no such file or directory" reaches containerd.
 */
export function toServiceError(err: unknown, context?: string): Partial<ServiceError> {
  const text = err instanceof Error ? err.message : String(err);
  const message = context && !(err instanceof RafsnapError) ? `${context}: ${text}` : text;
  return { code: codeOf(err), details: message, message, metadata: new Metadata() };
}
