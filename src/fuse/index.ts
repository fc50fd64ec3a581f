export { Errno, errnoOf } from "./errno.ts";
export { bitSet, type FastFile, FastReadRegistry, publishBit, type SpanTable, spanTable } from "./fast-read.ts";
export type { FileRange, ReadonlyFs } from "./fs.ts";
export { type Attr, type DirEntry, Op } from "./protocol.ts";
export { FuseSession, type SessionOptions } from "./session.ts";
