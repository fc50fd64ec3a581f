/**
 * Opening a blob for {@link Blobfs}: its CI table (cached as `<id>.blob.meta`, else fetched —
 * the CI array and its header only) and its data cache.
 */
import { closeSync, mkdirSync } from "node:fs";
import { BlobCache, cacheFiles, writeFileAtomic } from "../cache/index.ts";
import { invalidArgument } from "../errdefs/index.ts";
import { type BlobEntry, type BlobMeta, type ByteSource, bytesSource, parseBlobMetaFile, readBlobMeta } from "../rafs/index.ts";
import { type LayerFile, openRegular, readLayerFile } from "../sys/index.ts";
import type { BlobBackend } from "./backend.ts";

/** CI header size at the end of a `.blob.meta` file and after the CI array in a blob. */
const CI_HEADER = 4096;

/** The largest `.blob.meta` file read: a CI table of 2^24 v2 entries (the format's limit) + header. */
export const MAX_BLOB_META_BYTES = (1 << 24) * 24 + 2 * CI_HEADER;

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
  // A cached CI table is checked against this image's entry for the blob every time (it may
  // have come from another image's bootstrap layer); one that disagrees is fetched again.
  let meta = cachedMeta(files.meta, entry);
  if (!meta) {
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

/** The cached CI table of `entry` when the file exists, is a regular file and agrees with the entry. */
function cachedMeta(path: string, entry: BlobEntry): BlobMeta | undefined {
  let f: LayerFile;
  try {
    f = openRegular(path, "blob meta", MAX_BLOB_META_BYTES);
  } catch {
    return undefined;
  }
  try {
    return parseBlobMetaFile(bytesSource(readLayerFile(f)), entry);
  } catch {
    return undefined;
  } finally {
    closeSync(f.fd);
  }
}
