import type { Attr, DirEntry } from "./protocol.ts";

/**
 * A read-only filesystem served over FUSE. Inode 1 is the root. Lookups and attributes are
 * synchronous (they come from memory); reads may be asynchronous (they may fetch data).
 * Throwing a RafsnapError answers the request with the errno of its kind.
 */
export interface ReadonlyFs {
  lookup(parent: bigint, name: string): Attr | undefined;
  getattr(ino: bigint): Attr | undefined;
  /** Entries of a directory, without `.` and `..`. */
  readdir(ino: bigint): DirEntry[];
  read(ino: bigint, offset: number, size: number): Uint8Array | Promise<Uint8Array>;
  readlink?(ino: bigint): string;
  /** Totals for statfs: 4 KiB blocks and inodes. */
  totals?(): { blocks: number; files: number };
}
