export { BlobCache, blobCacheUsage, cacheFiles, removeBlobCache } from "./blob-cache.ts";
