import { dlopen, FFIType, type FFIFunction, type Library, type Pointer, read } from "bun:ffi";
import { notImplemented } from "../errdefs/index.ts";

/** The C library every binding loads (glibc on x86-64 and arm64 Linux). */
export const LIBC = "libc.so.6";

const ERRNO_SYMBOL = { __errno_location: { args: [], returns: FFIType.ptr } } as const;

/** `s` as a NUL-terminated UTF-8 C string argument. */
export const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, "utf8");

/** A bound set of libc functions, with errno and unloading. */
export interface Libc<S extends Record<string, FFIFunction>> {
  /** The functions asked for, callable from JavaScript. */
  symbols: Library<S & typeof ERRNO_SYMBOL>["symbols"];
  /**
   * The calling thread's errno: read it right after the call that failed, on the same thread
   * (each worker binds libc itself).
   */
  errno(): number;
  /** Unloads the binding; its functions must not be called afterwards. */
  close(): void;
}

/**
 * The one place rafsnap binds the C library (bun:ffi `dlopen` of {@link LIBC}): callers name
 * the functions they use with their C signatures and get them with `errno()`. Each caller
 * keeps its binding for as long as it needs the functions (per call, per session or per
 * thread) and closes it. Throws NotImplemented naming the library when it cannot be loaded.
 */
export function openLibc<const S extends Record<string, FFIFunction>>(symbols: S): Libc<S> {
  let lib: Library<S & typeof ERRNO_SYMBOL>;
  try {
    lib = dlopen(LIBC, { ...symbols, ...ERRNO_SYMBOL });
  } catch (e) {
    throw notImplemented(`cannot load ${LIBC}: ${(e as Error).message}`, e);
  }
  const c = lib.symbols;
  const errnoLocation = c.__errno_location as unknown as () => Pointer | null;
  return {
    symbols: c,
    errno: () => {
      const p = errnoLocation();
      return p ? read.i32(p, 0) : 0;
    },
    close: () => lib.close(),
  };
}

/**
 * Runs `fn` with `symbols` of libc bound for the duration of the call only (rare calls such
 * as mount(2): nothing stays loaded). Throws what `fn` throws, or NotImplemented as
 * {@link openLibc}.
 */
export function withLibc<const S extends Record<string, FFIFunction>, T>(symbols: S, fn: (libc: Libc<S>) => T): T {
  const libc = openLibc(symbols);
  try {
    return fn(libc);
  } finally {
    libc.close();
  }
}
