import { FFIType } from "bun:ffi";
import { openLibc } from "../sys/index.ts";

/**
 * The libc calls the reader threads' fast path needs and Node's fs lacks (pipes, splice,
 * posix_fadvise), through bun:ffi (glibc, x86-64 and arm64 Linux). One per thread: `errno()` is
 * the calling thread's.
 */
export function readerSys() {
  const libc = openLibc({
    pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    splice: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.u32], returns: FFIType.i64 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    posix_fadvise: { args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.i32], returns: FFIType.i32 },
  });
  return {
    ...libc.symbols,
    /** The calling thread's errno. */
    errno: libc.errno,
  };
}

/** `posix_fadvise` advice: sequential access (the kernel reads ahead twice as far). */
export const POSIX_FADV_SEQUENTIAL = 2;

/** What {@link readerSys} returns. */
export type ReaderSys = ReturnType<typeof readerSys>;
