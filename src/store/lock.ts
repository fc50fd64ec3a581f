import { FFIType } from "bun:ffi";
import { closeSync, openSync } from "node:fs";
import { failedPrecondition } from "../errdefs/index.ts";
import { openLibc } from "../sys/index.ts";

/** A held exclusive lock; released by {@link RootLock.release} or when the process exits. */
export interface RootLock {
  release(): void;
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * Takes an exclusive, non-blocking `flock(2)` on `path` (created 0600), so that only one
 * rafsnap process serves a root — as the Go snapshotter's bolt database lock does. The lock
 * dies with the process, so a crash never leaves a stale lock. Throws FailedPrecondition
 * naming the path when another process holds it.
 */
export function lockFile(path: string): RootLock {
  const { symbols, close } = openLibc({ flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
  const fd = openSync(path, "a", 0o600);
  if (symbols.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    close();
    throw failedPrecondition(`${path} is locked: another rafsnap process is serving this root`);
  }
  return {
    release() {
      closeSync(fd); // closing the descriptor drops the flock
      close();
    },
  };
}
