import { invalidArgument } from "../errdefs/index.ts";

/** Longest key or name accepted, in bytes (containerd keys are far shorter in practice). */
export const MAX_KEY_BYTES = 4096;

/**
 * Checks a snapshot key, name or parent as it arrives from containerd
 * (`<namespace>/<n>/<key>`). Keys are never used as paths (directories are named by id), but
 * a key that is empty, longer than {@link MAX_KEY_BYTES}, contains NUL, or has a `..` path
 * segment is refused so nothing downstream (logs, labels, tools) can be tricked by one.
 * Throws InvalidArgument naming which argument (`what`) was wrong and how.
 */
export function validateKey(what: string, key: string): void {
  if (key === "") throw invalidArgument(`${what} must not be empty`);
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) {
    throw invalidArgument(`${what} ${JSON.stringify(key.slice(0, 64))}… is ${bytes} bytes, more than the maximum ${MAX_KEY_BYTES}`);
  }
  if (key.includes("\0")) throw invalidArgument(`${what} ${JSON.stringify(key)} contains a NUL byte`);
  if (key.split("/").includes("..")) throw invalidArgument(`${what} ${JSON.stringify(key)} contains a ".." path segment`);
}
