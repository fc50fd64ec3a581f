/**
 * Reading regular-file contents end to end: chunk indexes from the bootstrap → the blob's CI
 * entries → compressed ranges → decompressed, verified bytes.
 */
import { malformed, type ByteSource } from "./bytes.ts";
import type { ChunkInfo } from "./blob-meta.ts";
import type { BlobEntry } from "./blob-table.ts";
import { readRange } from "./blob-data.ts";
import type { RafsImage } from "./image.ts";
import { isReg, Layout, readFlatData, type Inode } from "./inode.ts";

/** What reading from one blob needs: its table entry, bytes, CI entries and (optionally) digests. */
export interface BlobAccess {
  blob: BlobEntry;
  src: ByteSource;
  chunks: readonly ChunkInfo[];
  /** Per-ci-index digests to verify against (blob.digest array or chunk table), if wanted. */
  digests?: readonly Uint8Array[];
}

/**
 * Reads `[offset, offset + length)` of regular file `inode` (default: the whole file).
 * `access(blobIndex)` supplies each blob the file's chunks live in.
 *
 * Throws InvalidArgument when the range is outside the file, when a chunk index names a ci
 * index the blob does not have or whose uncompressed offset disagrees with the blob's CI entry
 * (bootstrap and blob do not belong together), plus the failure modes of {@link readRange}.
 */
export function readFile(image: RafsImage, inode: Inode, access: (blobIndex: number) => BlobAccess, offset = 0, length = inode.size - offset): Uint8Array {
  if (!isReg(inode.mode)) throw malformed(`inode[${inode.nid}].i_mode`, inode.offset + 4, "not a regular file");
  if (offset < 0 || length < 0 || offset + length > inode.size)
    throw malformed(`inode[${inode.nid}] read`, offset, `[${offset}, ${offset + length}) is outside the file of ${inode.size} bytes`);
  if (inode.layout !== Layout.CHUNK_BASED) return readFlatData(image.src, image.superblock, inode).slice(offset, offset + length);
  const out = new Uint8Array(length);
  const end = offset + length;
  for (const ci of image.chunks(inode)) {
    const from = Math.max(offset, ci.fileOffset);
    const to = Math.min(end, ci.fileOffset + ci.length);
    if (to <= from) continue;
    const a = access(ci.blobIndex);
    const info = a.chunks[ci.ciIndex];
    if (!info)
      throw malformed(
        `inode[${inode.nid}].chunk_index[${ci.index}].ci_index`,
        inode.offset,
        `${ci.ciIndex} but blob ${a.blob.blobId} has ${a.chunks.length} chunks`,
      );
    if (info.uncompressedOffset !== ci.uncompressedOffset || info.uncompressedSize < ci.length) {
      throw malformed(
        `inode[${inode.nid}].chunk_index[${ci.index}].c_blk_addr`,
        inode.offset,
        `uncompressed offset ${ci.uncompressedOffset} (${ci.length} bytes) disagrees with blob ${a.blob.blobId} chunk ${ci.ciIndex} at ${info.uncompressedOffset} (${info.uncompressedSize} bytes)`,
      );
    }
    const part = readRange(a.blob, a.chunks, a.src, ci.uncompressedOffset + (from - ci.fileOffset), to - from, { digests: a.digests });
    out.set(part, from - offset);
  }
  return out;
}

/**
 * The blob's whole uncompressed address space (`uncompressed_size` bytes, chunks at their
 * uncompressed offsets, gaps zero) — what the kernel reads as the blob's EROFS device.
 */
export function uncompressedBlob(a: BlobAccess): Uint8Array {
  return readRange(a.blob, a.chunks, a.src, 0, a.blob.uncompressedSize, { digests: a.digests });
}
