export { BlobCache, type CachedChunk, type Claim, ChunkFill, ChunkState } from "./blob-cache.ts";
export { blobCacheUsage, blobCachesIn, blobIdOfCacheFile, cacheFiles, ChunkMapFile, removeBlobCache, removeCacheFiles } from "./chunk-map.ts";
export { writeFileAtomic } from "./atomic.ts";
