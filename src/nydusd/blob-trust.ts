/**
 * Which bytes of a shared blob an image may be given (docs/security.md, "Cached bytes are
 * served only as the reading image expects them"): the rules Blobfs applies when a second
 * image asks for a served blob, when chunks from an earlier daemon run are found in the
 * cache, and when fetched chunks are published. Pure functions over a {@link BlobfsBlob}.
 */
import type { BlobEntry, ChunkHasher, ChunkInfo, ChunkTableEntry } from "../rafs/index.ts";
import { toHex } from "../rafs/index.ts";
import { type BlobfsBlob, metaDisagreement, usableDigests } from "./blob-open.ts";

/**
 * Why a new image, whose blob table entry and chunk table entries for the blob are `entry`
 * and `chunks`, may not share the served blob `b`: another layout, a CI table that places a
 * chunk elsewhere, a different digest for a chunk both know, or a served blob read without
 * digests while the new image has some. Undefined when they agree — then the new image's
 * other digests are added to `b`'s (chunks fetched from now on are checked against them too).
 */
export function shareConflict(b: BlobfsBlob, entry: BlobEntry, chunks: readonly ChunkTableEntry[]): string | undefined {
  const e = b.entry;
  if (
    e.compressor !== entry.compressor ||
    e.digester !== entry.digester ||
    e.chunkCount !== entry.chunkCount ||
    e.uncompressedSize !== entry.uncompressedSize ||
    e.ciOffset !== entry.ciOffset
  ) {
    return "another blob table entry";
  }
  const why = metaDisagreement(b.meta, chunks);
  if (why) return why;
  const mine = usableDigests(chunks);
  if (b.digests.size === 0 && mine.size > 0) return "the served blob is read without chunk digests";
  for (const [ci, d] of mine) {
    const known = b.digests.get(ci);
    if (known !== undefined && known !== d) return `chunk ${ci} has another digest`;
  }
  for (const [ci, d] of mine) b.digests.set(ci, d);
  return undefined;
}

/** Whether the cached bytes of chunk `c` of `b` may be served: they match its digest, or `b` checks none. */
function cachedBytesMatch(b: BlobfsBlob, c: ChunkInfo, hasher: ChunkHasher | undefined): boolean {
  const want = b.digests.get(c.ciIndex);
  if (want === undefined) return b.digests.size === 0;
  return toHex((hasher as ChunkHasher)(b.entry.digester, b.cache.read(c.uncompressedOffset, c.uncompressedSize))) === want;
}

/** The first PRESENT chunk of `b` whose cached bytes do not match its digest, if any. */
export function firstMismatch(b: BlobfsBlob, hasher: ChunkHasher): number | undefined {
  if (b.digests.size === 0) return undefined;
  for (const c of b.meta.chunks) {
    if (b.digests.has(c.ciIndex) && b.cache.has(c.ciIndex) && !cachedBytesMatch(b, c, hasher)) return c.ciIndex;
  }
  return undefined;
}

/** Of `found` (chunks an earlier run left in the cache), those whose bytes may be served now. */
export function trustedOnDisk(b: BlobfsBlob, found: readonly ChunkInfo[], hasher: ChunkHasher | undefined): number[] {
  return found.filter((c) => cachedBytesMatch(b, c, hasher)).map((c) => c.ciIndex);
}

/**
 * Whether a fetched chunk may be published: some image has a digest for it (it was verified,
 * or will be checked before a second image is given the blob), or `b` checks no digests at
 * all. A chunk read ahead past what the images reference is fetched but not published: an
 * image that shares the blob later may expect other bytes there.
 */
export function publishable(b: BlobfsBlob, ci: number): boolean {
  return b.digests.size === 0 || b.digests.has(ci);
}
