/**
 * Opening a blob for {@link Blobfs}: its CI table (cached as `<id>.blob.meta`, else fetched —
 * the CI array and its header only) and its data cache.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { BlobCache, cacheFiles, writeFileAtomic } from "../cache/index.ts";
import { invalidArgument } from "../errdefs/index.ts";
import { type BlobEntry, type BlobMeta, type ByteSource, bytesSource, parseBlobMetaFile, readBlobMeta } from "../rafs/index.ts";
import type { BlobBackend } from "./backend.ts";

/** CI header size at the end of a `.blob.meta` file and after the CI array in a blob. */
const CI_HEADER = 4096;

/** One blob served by {@link Blobfs}: its table entry, CI table, cache and chunk digests. */
export interface BlobfsBlob {
  entry: BlobEntry;
  meta: BlobMeta;
  cache: BlobCache;
  /**
   * Expected digest (hex) per CI index, from the bootstrap's chunk table; every fetched chunk
   * with an entry here is verified (empty when `digest_validate` is off).
   */
  digests: Map<number, string>;
}

/**
 * Opens blob `entry` for serving: its CI table from `<cacheDir>/<id>.blob.meta` when cached,
 * else fetched from the backend (the CI array and its header, nothing else) and cached, and
 * its data cache. Throws InvalidArgument when the blob's metadata is malformed.
 */
export async function openBlob(entry: BlobEntry, backend: BlobBackend, cacheDir: string, digests: Map<number, string>): Promise<BlobfsBlob> {
  const files = cacheFiles(cacheDir, entry.blobId);
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  let meta: BlobMeta;
  if (existsSync(files.meta)) {
    meta = parseBlobMetaFile(bytesSource(new Uint8Array(readFileSync(files.meta))));
  } else {
    const start = entry.ciOffset;
    const window = await backend.read(entry.blobId, start, entry.ciCompressedSize + CI_HEADER);
    const src: ByteSource = {
      size: entry.compressedSize,
      readAt(offset, length) {
        if (offset < start || offset + length > start + window.length) {
          throw invalidArgument(`blob ${entry.blobId}: metadata read ${offset}+${length} outside the fetched CI window`);
        }
        return window.subarray(offset - start, offset - start + length);
      },
    };
    meta = readBlobMeta(src, entry);
    const padded = Math.ceil(meta.ciData.length / 4096) * 4096;
    const file = new Uint8Array(padded + CI_HEADER);
    file.set(meta.ciData, 0);
    file.set(window.subarray(window.length - CI_HEADER), padded);
    writeFileAtomic(files.meta, file);
  }
  const cache = BlobCache.open(cacheDir, entry.blobId, entry.uncompressedSize, meta.chunks.length);
  return { entry, meta, cache, digests };
}
