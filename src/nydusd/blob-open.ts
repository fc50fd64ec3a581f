/**
 * Opening a blob for {@link Blobfs}: its CI table (cached as `<id>.blob.meta`, else fetched —
 * the CI array and its header only) and its data cache.
 */
import { closeSync, mkdirSync } from "node:fs";
import { BlobCache, cacheFiles, writeFileAtomic } from "../cache/index.ts";
import { invalidArgument } from "../errdefs/index.ts";
import { type BlobEntry, type BlobMeta, type ByteSource, bytesSource, type ChunkTableEntry, parseBlobMetaFile, readBlobMeta } from "../rafs/index.ts";
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
   * Expected digest (hex) per CI index, from the chunk tables of the images reading the blob:
   * chunks found in the cache from an earlier session are checked against them before they
   * are served, and with {@link verify} every fetched chunk too.
   */
  digests: Map<number, string>;
  /**
   * Whether fetched chunks are verified before they are published: `digest_validate`, and
   * always once a second image shares the blob (Blobfs.acquire).
   */
  verify: boolean;
  /**
   * A PRESENT chunk found not to match its digest when the blob was first shared (fetched
   * unverified for the image that opened it): no other image is given the blob.
   */
  tainted?: number;
  /** The blob's layout key (hex), see {@link blobLayoutKey}. */
  key: string;
}

const ZERO_DIGEST = "0".repeat(64);

/**
 * The chunk digests of one blob worth checking, CI index → hex digest, from the image's
 * chunk table entries for it (all-zero digests — tarfs-style bootstraps carry none — left out).
 */
export function usableDigests(chunks: readonly ChunkTableEntry[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of chunks) if (e.digest !== ZERO_DIGEST) out.set(e.ciIndex, e.digest);
  return out;
}

/**
 * Why `meta` (a CI table) disagrees with what the image's own chunk table says of the blob's
 * chunks (`chunks`: its entries for this blob), or undefined when it agrees. A CI table is
 * shared by every image reading the blob; it must place each chunk where every one of them
 * expects it, else a chunk verified under its own digest would be served at another chunk's
 * offset.
 */
export function metaDisagreement(meta: BlobMeta, chunks: readonly ChunkTableEntry[]): string | undefined {
  for (const e of chunks) {
    const c = meta.chunks[e.ciIndex];
    if (!c) return `the CI table has no chunk ${e.ciIndex}`;
    if (c.uncompressedOffset !== e.uncompressedOffset || c.uncompressedSize !== e.uncompressedSize) {
      return `chunk ${e.ciIndex} is at ${c.uncompressedOffset}+${c.uncompressedSize} in the CI table, at ${e.uncompressedOffset}+${e.uncompressedSize} in the bootstrap`;
    }
  }
  return undefined;
}

/**
 * The layout a blob's cache is written under: sha256 over the blob table entry's layout
 * fields and the CI table's bytes. A cache written under another layout starts empty
 * (BlobCache.open `key`).
 */
export function blobLayoutKey(entry: BlobEntry, meta: BlobMeta): Uint8Array {
  const e = entry;
  const h = new Bun.CryptoHasher("sha256");
  h.update(
    JSON.stringify([
      e.blobId,
      e.compressor,
      e.digester,
      e.chunkSize,
      e.chunkCount,
      e.uncompressedSize,
      e.ciCompressor,
      e.ciOffset,
      e.ciCompressedSize,
      e.ciUncompressedSize,
    ]),
  );
  h.update(meta.ciData);
  return new Uint8Array(h.digest());
}

/**
 * Opens blob `entry` for serving: its CI table from `<cacheDir>/<id>.blob.meta` when cached,
 * else fetched from the backend (the CI array and its header, nothing else) and cached, and
 * its data cache (under {@link blobLayoutKey}, re-checking chunks left by earlier sessions).
 * `chunks` are the image's chunk table entries for this blob: their digests are what cached
 * chunks (and, with `verify` — `digest_validate` — fetched ones) are checked against, and
 * the CI table must agree with them
 * ({@link metaDisagreement}). Throws InvalidArgument when the blob's metadata is malformed or
 * disagrees with the bootstrap.
 */
export async function openBlob(
  entry: BlobEntry,
  backend: BlobBackend,
  cacheDir: string,
  chunks: readonly ChunkTableEntry[],
  verify: boolean,
): Promise<BlobfsBlob> {
  const files = cacheFiles(cacheDir, entry.blobId);
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  // A cached CI table is checked against this image's entry and chunk table every time (it
  // may have come from another image); one that disagrees is fetched again.
  let meta = cachedMeta(files.meta, entry);
  if (meta && metaDisagreement(meta, chunks)) meta = undefined;
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
    const why = metaDisagreement(meta, chunks);
    if (why) throw invalidArgument(`blob ${entry.blobId}: its CI table disagrees with the bootstrap: ${why}`);
    const padded = Math.ceil(meta.ciData.length / 4096) * 4096;
    const file = new Uint8Array(padded + CI_HEADER);
    file.set(meta.ciData, 0);
    file.set(window.subarray(window.length - CI_HEADER), padded);
    writeFileAtomic(files.meta, file);
  }
  const key = blobLayoutKey(entry, meta);
  const cache = BlobCache.open(cacheDir, entry.blobId, entry.uncompressedSize, meta.chunks.length, { key, revalidate: true });
  return { entry, meta, cache, digests: usableDigests(chunks), verify, key: Buffer.from(key).toString("hex") };
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
