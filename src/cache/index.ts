export { BlobCache, blobCacheUsage, cacheFiles, removeBlobCache } from "./blob-cache.ts";
export { writeFileAtomic } from "./atomic.ts";
