import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { BodyLimit, readBody } from "./body.ts";

/** Registry error codes (distribution spec) we turn into clearer messages. */
interface DistributionError {
  code?: string;
  message?: string;
}

/** The error kind for an HTTP status from a registry. */
export function kindOfStatus(status: number): ErrorKind {
  if (status === 401) return ErrorKind.Unauthenticated;
  if (status === 403) return ErrorKind.PermissionDenied;
  if (status === 404) return ErrorKind.NotFound;
  if (status === 400 || status === 405 || status === 413 || status === 416) return ErrorKind.InvalidArgument;
  if (status === 409) return ErrorKind.AlreadyExists;
  if (status === 429 || status >= 500) return ErrorKind.Unavailable;
  return ErrorKind.Unknown;
}

/**
 * Builds the error for a failed registry response: the kind from the status, and a message
 * naming the operation, the repository and digest/reference, the status, and the
 * registry's own error codes when its body has them (read up to {@link BodyLimit.error}
 * bytes, idle at most `idleMs`). Never includes request headers (they may hold credentials).
 */
export async function registryError(what: string, res: Response, idleMs = 10_000): Promise<RafsnapError> {
  let detail = "";
  try {
    const text = new TextDecoder().decode(await readBody(res, what, { max: BodyLimit.error, idleMs }));
    const body = JSON.parse(text) as { errors?: DistributionError[] };
    if (Array.isArray(body.errors) && body.errors.length) {
      detail = `: ${body.errors.map((e) => [e.code, e.message].filter(Boolean).join(" ")).join("; ")}`;
    }
  } catch {
    // not a distribution error body
  }
  const hint = res.status === 401 ? " (credentials missing or rejected)" : res.status === 403 ? " (access denied for these credentials)" : "";
  return new RafsnapError(kindOfStatus(res.status), `${what}: HTTP ${res.status}${hint}${detail}`);
}
