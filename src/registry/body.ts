/**
 * Reading response bodies from registries that may be hostile: every body has a size cap
 * (checked against Content-Length before reading and while reading) and every read an idle
 * deadline, so an endless or trickled body costs bounded memory and time.
 */
import { ErrorKind, RafsnapError, invalidArgument } from "../errdefs/index.ts";

/** Caps on what a registry may send (bytes). containerd reads manifests up to 4 MiB. */
export const BodyLimit = {
  manifest: 4 << 20,
  /** An image config. */
  config: 4 << 20,
  /** A token service's JSON answer. */
  token: 1 << 20,
  /** The body of an error response (only its distribution error codes are used). */
  error: 64 << 10,
} as const;

/** A body that broke a rule: too large, cut short, or silent for too long. */
function bodyError(kind: ErrorKind, what: string, why: string): RafsnapError {
  return new RafsnapError(kind, `${what}: ${why}`);
}

/**
 * Reads `res`'s body whole, refusing one larger than `max` bytes (ResourceExhausted, before
 * reading when Content-Length says so) and one idle for `idleMs` between pieces
 * (DeadlineExceeded; the body is cancelled). With `exact`, the body must be exactly `max`
 * bytes (Unavailable when shorter: a cut body).
 */
export async function readBody(res: Response, what: string, opts: { max: number; idleMs: number; exact?: boolean }): Promise<Uint8Array> {
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) > opts.max) {
    await res.body?.cancel().catch(() => {});
    throw bodyError(ErrorKind.ResourceExhausted, what, `the registry announced ${declared} bytes, more than the ${opts.max} allowed`);
  }
  const out = new Uint8Array(opts.exact ? opts.max : Math.min(opts.max, declared !== null ? Number(declared) : 64 << 10));
  let buf = out;
  let len = 0;
  for await (const piece of idleChunks(res, what, opts.idleMs)) {
    if (len + piece.length > opts.max) throw bodyError(ErrorKind.ResourceExhausted, what, `the body is longer than the ${opts.max} bytes allowed`);
    if (len + piece.length > buf.length) {
      const bigger = new Uint8Array(Math.min(opts.max, Math.max(buf.length * 2, len + piece.length)));
      bigger.set(buf.subarray(0, len));
      buf = bigger;
    }
    buf.set(piece, len);
    len += piece.length;
  }
  if (opts.exact && len !== opts.max) throw bodyError(ErrorKind.Unavailable, what, `the body ended after ${len} of ${opts.max} bytes`);
  return buf.subarray(0, len);
}

/**
 * The pieces of `res`'s body, failing with DeadlineExceeded (and cancelling the body) when
 * none arrives for `idleMs`. An error of the stream itself is passed on. One watchdog timer
 * per body, not one per piece: bodies of data-plane ranges arrive in hundreds of pieces.
 */
export async function* idleChunks(res: Response, what: string, idleMs: number): AsyncGenerator<Uint8Array> {
  if (!res.body) return;
  const reader = res.body.getReader();
  let last = performance.now();
  let expired = false;
  const dog = setInterval(
    () => {
      if (performance.now() - last <= idleMs) return;
      expired = true;
      void reader.cancel().catch(() => {});
    },
    Math.max(20, Math.min(1000, idleMs / 4)),
  );
  try {
    for (;;) {
      const r = await reader.read();
      if (expired) throw bodyError(ErrorKind.DeadlineExceeded, what, `no data for ${idleMs} ms`);
      if (r.done) return;
      last = performance.now();
      if (r.value.length > 0) yield r.value;
    }
  } finally {
    clearInterval(dog);
    await reader.cancel().catch(() => {});
  }
}

/** Whether `digest` is `sha256:<64 lowercase hex>` — the only digests that become URLs and paths. */
export function isDigest(digest: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(digest);
}

/** Throws InvalidArgument naming `what` unless `digest` is `sha256:<64 lowercase hex>` ({@link isDigest}). */
export function checkDigest(digest: string, what: string): void {
  if (!isDigest(digest)) throw invalidArgument(`${what}: ${JSON.stringify(digest.slice(0, 100))} is not a sha256 digest (sha256:<64 hex>)`);
}
