/**
 * Pure RAFS v6 format code (docs/rafs.md): byte arrays or read-at functions in,
 * structures out; no I/O of its own. See docs/rafs.md.
 */
export * from "./bytes.ts";
export * from "./superblock.ts";
export * from "./blob-table.ts";
export * from "./inode.ts";
export * from "./xattr.ts";
export * from "./dir.ts";
export * from "./chunk.ts";
export * from "./compress.ts";
export * from "./lz4.ts";
export * from "./blob-meta.ts";
export * from "./toc.ts";
export * from "./blob-data.ts";
export * from "./image.ts";
export * from "./tree.ts";
export * from "./file.ts";
export * from "./builder/index.ts";
export * from "./open.ts";
export * from "./prefetch-list.ts";
