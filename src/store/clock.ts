import { FFIType, ptr } from "bun:ffi";
import { openLibc } from "../sys/index.ts";

/** Microseconds since the Unix epoch. */
export type Micros = number;

/** A wall clock; the store takes one so tests can pin time. */
export type Clock = () => Micros;

/**
 * The system's real-time clock at microsecond precision, read with `clock_gettime(2)`.
 * `Date.now()` has only millisecond precision, and containerd's conformance suite checks
 * that Created/Updated lie between two `time.Now()` readings of its own: a time truncated
 * to the millisecond can fall before the first. Throws if libc cannot be loaded.
 */
export function systemClock(): Clock {
  const lib = openLibc({ clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } });
  const ts = new BigInt64Array(2);
  const p = ptr(ts);
  const CLOCK_REALTIME = 0;
  return () => {
    if (lib.symbols.clock_gettime(CLOCK_REALTIME, p) !== 0) return Date.now() * 1000;
    return Number(ts[0]) * 1_000_000 + Math.floor(Number(ts[1]) / 1000);
  };
}
