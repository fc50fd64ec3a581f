export { BlobCache, type CachedChunk, type Claim, ChunkFill, ChunkState } from "./blob-cache.ts";
export { blobCacheUsage, cacheFiles, ChunkMapFile, removeBlobCache } from "./chunk-map.ts";
export { writeFileAtomic } from "./atomic.ts";
