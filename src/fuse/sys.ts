import { dlopen, FFIType, read } from "bun:ffi";

/**
 * The libc calls the reader threads' fast path needs and Node's fs lacks (pipes, splice,
 * posix_fadvise), through bun:ffi (glibc, x86-64 and arm64 Linux). One per thread: `errno()` is
 * the calling thread's.
 */
export function readerSys() {
  const { symbols: c } = dlopen("libc.so.6", {
    pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    splice: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.u32], returns: FFIType.i64 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    posix_fadvise: { args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
  const errnoPtr = c.__errno_location();
  return {
    ...c,
    /** The calling thread's errno. */
    errno: (): number => (errnoPtr ? read.i32(errnoPtr, 0) : 0),
  };
}

/** `posix_fadvise` advice: sequential access (the kernel reads ahead twice as far). */
export const POSIX_FADV_SEQUENTIAL = 2;

/** What {@link readerSys} returns. */
export type ReaderSys = ReturnType<typeof readerSys>;
