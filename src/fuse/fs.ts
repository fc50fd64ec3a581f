import type { FastReadRegistry } from "./fast-read.ts";
import type { Attr, DirEntry } from "./protocol.ts";

/** A range of an open file: where a read's bytes are ({@link ReadonlyFs.readSource}). */
export interface FileRange {
  fd: number;
  offset: number;
  length: number;
  /** Called once the reply was sent from `fd` (the owner may close it only afterwards). */
  release?: () => void;
}

/**
 * A read-only filesystem served over FUSE. Inode 1 is the root. Lookups and attributes are
 * synchronous (they come from memory); reads may be asynchronous (they may fetch data).
 * Throwing a RafsnapError answers the request with the errno of its kind. A failed read is
 * logged by the filesystem itself (the session logs it only at debug).
 */
export interface ReadonlyFs {
  lookup(parent: bigint, name: string): Attr | undefined;
  getattr(ino: bigint): Attr | undefined;
  /** Entries of a directory, without `.` and `..`. */
  readdir(ino: bigint): DirEntry[];
  read(ino: bigint, offset: number, size: number): Uint8Array | Promise<Uint8Array>;
  /**
   * Optional form of {@link read} for data that sits in a file: the read's bytes are
   * `length` bytes of descriptor `fd` at `offset` (fewer than asked only at the end of the
   * file). The session sends them at once — spliced into `/dev/fuse` when it can, so they are
   * never copied through this process — and then calls the range's `release`, until which
   * `fd` must stay open. Same errors as {@link read}.
   */
  readSource?(ino: bigint, offset: number, size: number): Promise<FileRange>;
  readlink?(ino: bigint): string;
  /** Totals for statfs: 4 KiB blocks and inodes. */
  totals?(): { blocks: number; files: number };
  /**
   * Files are opened with FOPEN_DIRECT_IO (and FUSE_ASYNC_DIO negotiated): the kernel keeps
   * no page cache of them and every read reaches {@link read} (or the fast path) with the
   * reader's own size. For files whose reader caches the content itself (EROFS over blobfs),
   * this saves a second page cache and a copy; default false (FOPEN_KEEP_CACHE).
   */
  readonly directIo?: boolean;
  /**
   * Called once when a session starts serving this fs with the fast path enabled: files
   * registered with `fast` have the reads of their ready ranges answered by the reader
   * threads, without {@link read}. Unregister a file before its cache descriptor closes.
   */
  attachFastRead?(fast: FastReadRegistry): void;
  /**
   * A read of `ino` the fast path served, reported only when the bytes right after it are
   * not ready yet: lets the fs read ahead for sequential readers.
   */
  readServedFast?(ino: bigint, offset: number, length: number): void;
}
