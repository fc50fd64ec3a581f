import { closeSync, existsSync, fdatasyncSync, ftruncateSync, mkdirSync, openSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { internal, invalidArgument } from "../errdefs/index.ts";

/** Cache file names of one blob (nydus-facts §8). */
export function cacheFiles(dir: string, blobId: string) {
  return {
    data: join(dir, `${blobId}.blob.data`),
    chunkMap: join(dir, `${blobId}.chunk_map`),
    meta: join(dir, `${blobId}.blob.meta`),
  };
}

const MAGIC = 0x4d434652; // "RFCM" little-endian: rafsnap chunk map
const HEADER = 16;
const BLOB_ID = /^[0-9a-f]{64}$/;

/**
 * The local cache of one blob: `<id>.blob.data` holds the blob's uncompressed address space
 * (a sparse file of `uncompressed_size` bytes, chunks at their uncompressed offsets) and
 * `<id>.chunk_map` says which chunks (by CI index) are in it: a 16-byte header
 * (magic "RFCM", version 1, chunk count) and a bitmap.
 *
 * Durability: a chunk's bit reaches the map file only after its data was flushed with
 * fdatasync ({@link BlobCache.flush}, also run every `flushEvery` chunks and on close), so a
 * power loss can lose cached chunks (they are fetched again) but never mark garbage as
 * ready. A map of another size or format is discarded (everything is fetched again).
 *
 * In memory the bitmap lives in a SharedArrayBuffer ({@link BlobCache.bitmap}) so that other
 * threads (the FUSE readers' fast path) can read it: a chunk's bit is published with
 * `Atomics.or` only after its bytes were written to the data file (the page cache, which
 * every reader of the file sees), never before, and never cleared.
 */
export class BlobCache {
  private readonly ready: Uint8Array;
  private readonly dirty = new Set<number>();
  private closed = false;

  private constructor(
    /** Path of the data file (what nydusd reports as an underlying file). */
    readonly dataPath: string,
    readonly blobId: string,
    readonly size: number,
    readonly chunkCount: number,
    /** Descriptor of the data file (read-write; owned by the cache, closed by {@link close}). */
    readonly dataFd: number,
    private readonly mapFd: number,
    bitmap: Uint8Array,
    private readonly flushEvery: number,
  ) {
    this.ready = bitmap;
  }

  /**
   * Opens (creating) the cache of `blobId` (64 hex digits) in `dir`. Throws InvalidArgument
   * for a bad id, Internal when the files cannot be opened.
   */
  static open(dir: string, blobId: string, size: number, chunkCount: number, opts: { flushEvery?: number } = {}): BlobCache {
    if (!BLOB_ID.test(blobId)) throw invalidArgument(`blob id ${JSON.stringify(blobId)} is not 64 hex digits`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const f = cacheFiles(dir, blobId);
    let dataFd = -1;
    try {
      dataFd = openSync(f.data, "a+", 0o600);
      closeSync(dataFd);
      dataFd = openSync(f.data, "r+");
      if (statSync(f.data).size !== size) ftruncateSync(dataFd, size);
      const mapFd = openSync(f.chunkMap, existsSync(f.chunkMap) ? "r+" : "w+", 0o600);
      const bytes = Math.ceil(chunkCount / 8);
      const bitmap = new Uint8Array(new SharedArrayBuffer(Math.max(4, (bytes + 3) & ~3)), 0, bytes);
      const head = new Uint8Array(HEADER);
      const got = readSync(mapFd, head, 0, HEADER, 0);
      const hv = new DataView(head.buffer);
      if (got === HEADER && hv.getUint32(0, true) === MAGIC && hv.getUint32(4, true) === 1 && hv.getUint32(8, true) === chunkCount) {
        readSync(mapFd, bitmap, 0, bytes, HEADER);
      } else {
        hv.setUint32(0, MAGIC, true);
        hv.setUint32(4, 1, true);
        hv.setUint32(8, chunkCount, true);
        writeSync(mapFd, head, 0, HEADER, 0);
        writeSync(mapFd, bitmap, 0, bytes, HEADER);
        ftruncateSync(mapFd, HEADER + bytes);
      }
      return new BlobCache(f.data, blobId, size, chunkCount, dataFd, mapFd, bitmap, opts.flushEvery ?? 64);
    } catch (e) {
      if (dataFd >= 0) closeSync(dataFd);
      throw internal(`open cache of blob ${blobId} in ${dir}: ${(e as Error).message}`, e);
    }
  }

  /**
   * The in-memory ready bitmap (bit `ci` = `bitmap[ci >> 3] >> (ci & 7) & 1`), over a
   * SharedArrayBuffer: read it with `Atomics.load` from other threads.
   */
  get bitmap(): Uint8Array {
    return this.ready;
  }

  /** True when chunk `ci` is in the data file. */
  has(ci: number): boolean {
    return ci >= 0 && ci < this.chunkCount && (((this.ready[ci >> 3] as number) >> (ci & 7)) & 1) === 1;
  }

  /** Number of chunks cached. */
  readyCount(): number {
    let n = 0;
    for (let i = 0; i < this.chunkCount; i++) if (this.has(i)) n++;
    return n;
  }

  /**
   * Stores the uncompressed bytes of chunk `ci` at `offset` and marks it ready (in memory at
   * once; in the map file at the next flush). InvalidArgument when it does not fit the blob.
   */
  put(ci: number, offset: number, data: Uint8Array): void {
    if (ci < 0 || ci >= this.chunkCount || offset < 0 || offset + data.length > this.size) {
      throw invalidArgument(`blob ${this.blobId}: chunk ${ci} at ${offset}+${data.length} is outside the blob`);
    }
    let done = 0;
    while (done < data.length) done += writeSync(this.dataFd, data, done, data.length - done, offset + done);
    this.markWritten(ci);
  }

  /**
   * Marks chunk `ci` ready once another thread has written its bytes to the data file through
   * {@link dataFd} (in memory at once; in the map file at the next flush). InvalidArgument for
   * an index outside the blob.
   */
  markWritten(ci: number): void {
    if (ci < 0 || ci >= this.chunkCount) throw invalidArgument(`blob ${this.blobId}: chunk ${ci} is outside the blob`);
    // Published only now that the bytes are in the data file (see the class comment).
    Atomics.or(this.ready, ci >> 3, 1 << (ci & 7));
    this.dirty.add(ci >> 3);
    if (this.dirty.size >= this.flushEvery) this.flush();
  }

  /** Reads `[offset, offset + length)` of the uncompressed blob from the data file. */
  read(offset: number, length: number): Uint8Array {
    const n = Math.max(0, Math.min(length, this.size - offset));
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const r = readSync(this.dataFd, out, done, n - done, offset + done);
      if (r === 0) break;
      done += r;
    }
    return out;
  }

  /** Makes cached data durable, then records its chunks in the map file. */
  flush(): void {
    if (this.dirty.size === 0 || this.closed) return;
    fdatasyncSync(this.dataFd);
    for (const i of this.dirty) writeSync(this.mapFd, this.ready, i, 1, HEADER + i);
    fdatasyncSync(this.mapFd);
    this.dirty.clear();
  }

  /** Flushes and closes the files. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    closeSync(this.dataFd);
    closeSync(this.mapFd);
  }
}

/**
 * Bytes on disk used by the cache files of `blobId` (allocated blocks, as sparse data files
 * only use what was fetched). Missing files count 0.
 */
export function blobCacheUsage(dir: string, blobId: string): number {
  let total = 0;
  for (const p of Object.values(cacheFiles(dir, blobId))) {
    try {
      total += statSync(p).blocks * 512;
    } catch {
      // not there
    }
  }
  return total;
}

/** Removes the cache files of `blobId`: chunk map first, then meta, then data (§8 order). */
export function removeBlobCache(dir: string, blobId: string): void {
  const f = cacheFiles(dir, blobId);
  for (const p of [f.chunkMap, f.meta, f.data]) rmSync(p, { force: true });
}
