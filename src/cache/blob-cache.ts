import { closeSync, fdatasyncSync, ftruncateSync, mkdirSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { dataLoss, failedPrecondition, internal, invalidArgument } from "../errdefs/index.ts";
import { cacheFiles, ChunkMapFile } from "./chunk-map.ts";

const BLOB_ID = /^[0-9a-f]{64}$/;

/** Where a chunk's uncompressed bytes go in the data file. */
export interface CachedChunk {
  ciIndex: number;
  uncompressedOffset: number;
  uncompressedSize: number;
}

/** A chunk's state as {@link BlobCache.state} reports it. */
export const ChunkState = { ABSENT: 0, FETCHING: 1, PRESENT: 2 } as const;
export type ChunkState = (typeof ChunkState)[keyof typeof ChunkState];

/** What {@link BlobCache.claim} hands back. */
export interface Claim<T extends CachedChunk> {
  /** The chunks the caller now fetches (FETCHING, owned by this fill); undefined when none. */
  fill: ChunkFill<T> | undefined;
  /**
   * One promise per chunk someone else is fetching: resolves once it is present, rejects
   * with that fetch's error when it ends without it.
   */
  waits: Promise<void>[];
}

interface Waiter {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * The local cache of one blob and the one owner of its chunks' state.
 *
 * Files: `<id>.blob.data` holds the blob's uncompressed address space (a sparse file of
 * `uncompressed_size` bytes, chunks at their uncompressed offsets); `<id>.chunk_map` says
 * which chunks are durable in it ({@link ChunkMapFile}).
 *
 * A chunk's life: ABSENT → FETCHING (claimed by exactly one {@link ChunkFill}) → PRESENT, or
 * back to ABSENT when its fill ends without it. The invariant every reader relies on:
 *
 *   **a chunk is PRESENT only after its bytes were written to the data file at its offset.**
 *
 * Who may change what:
 * - only a {@link ChunkFill} publishes chunks, and only the chunks it claimed: through
 *   {@link ChunkFill.write} (this thread writes) or {@link ChunkFill.published} (another
 *   thread — a decode worker — wrote through {@link ChunkFill.fd} and said so);
 * - the data file descriptor stays open while any fill or {@link lease} holds it:
 *   {@link close} waits for them, so a descriptor number is never written or read after it
 *   was closed (or reused by another file);
 * - the in-memory ready bitmap ({@link bitmap}, in a SharedArrayBuffer) is set with
 *   `Atomics.or` after the write and never cleared; other threads (the FUSE readers' fast
 *   path) only read it;
 * - the map file gets a chunk's bit only after the data file was synced (fdatasync), in
 *   {@link flush}: every `flushEvery` bitmap bytes, and on close. A daemon killed at any
 *   point, or a power loss, therefore loses at most chunks that are fetched again; it never
 *   finds a bit whose bytes are not on disk.
 * - opened with `revalidate` (the daemon does), a chunk found durable on disk is not PRESENT
 *   in the new session until a fill that claimed it re-checked its bytes against the reading
 *   image's digest and published it ({@link ChunkFill.onDisk}): bytes left by an earlier
 *   session — another image's, a crashed daemon's — are never served unchecked.
 */
export class BlobCache {
  private readonly ready: Uint8Array;
  /** Chunks whose bytes are durable in the data file (what the map file records). */
  private readonly persisted: Uint8Array;
  private readonly dirty = new Set<number>();
  private readonly fetching = new Map<number, ChunkFill<CachedChunk>>();
  private readonly fills = new Set<ChunkFill<CachedChunk>>();
  private holders = 0;
  private closing: Promise<void> | undefined;
  private finishClose: (() => void) | undefined;
  private closed = false;

  private constructor(
    /** Path of the data file (what nydusd reports as an underlying file). */
    readonly dataPath: string,
    readonly blobId: string,
    readonly size: number,
    readonly chunkCount: number,
    private readonly fd: number,
    private readonly map: ChunkMapFile,
    bitmap: Uint8Array,
    persisted: Uint8Array,
    private readonly flushEvery: number,
  ) {
    this.ready = bitmap;
    this.persisted = persisted;
  }

  /**
   * Opens (creating) the cache of `blobId` (64 hex digits) in `dir`. `key` (32 bytes) names
   * the layout the cached chunks were written under (see src/nydusd/blob-open.ts): a cache
   * written under another key starts empty. With `revalidate`, chunks found on disk are not
   * PRESENT yet: a fill that claims one may check its bytes ({@link ChunkFill.onDisk}) and
   * publish it without fetching. Throws InvalidArgument for a bad id, Internal when the files
   * cannot be opened.
   */
  static open(
    dir: string,
    blobId: string,
    size: number,
    chunkCount: number,
    opts: { flushEvery?: number; key?: Uint8Array; revalidate?: boolean } = {},
  ): BlobCache {
    if (!BLOB_ID.test(blobId)) throw invalidArgument(`blob id ${JSON.stringify(blobId)} is not 64 hex digits`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const f = cacheFiles(dir, blobId);
    let fd = -1;
    try {
      fd = openSync(f.data, "a+", 0o600);
      closeSync(fd);
      fd = openSync(f.data, "r+");
      if (statSync(f.data).size !== size) ftruncateSync(fd, size);
      const bytes = Math.ceil(chunkCount / 8);
      const bitmap = new Uint8Array(new SharedArrayBuffer(Math.max(4, (bytes + 3) & ~3)), 0, bytes);
      const persisted = new Uint8Array(bytes);
      const map = ChunkMapFile.open(f.chunkMap, chunkCount, persisted, opts.key);
      if (!opts.revalidate) bitmap.set(persisted);
      return new BlobCache(f.data, blobId, size, chunkCount, fd, map, bitmap, persisted, opts.flushEvery ?? 64);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      throw internal(`open cache of blob ${blobId} in ${dir}: ${(e as Error).message}`, e);
    }
  }

  /**
   * The ready bitmap (bit `ci` = `bitmap[ci >> 3] >> (ci & 7) & 1`), over a
   * SharedArrayBuffer: other threads read it with `Atomics.load` and never write it.
   */
  get bitmap(): Uint8Array {
    return this.ready;
  }

  /**
   * The data file's descriptor, for registering with readers that reopen it (the FUSE fast
   * path reopens it through `/proc/self/fd` and owns that copy). Valid until {@link close}.
   */
  get dataFd(): number {
    return this.fd;
  }

  /** True when chunk `ci` is PRESENT. */
  has(ci: number): boolean {
    return ci >= 0 && ci < this.chunkCount && ((Atomics.load(this.ready, ci >> 3) >> (ci & 7)) & 1) === 1;
  }

  /** The state of chunk `ci`. */
  state(ci: number): ChunkState {
    if (this.has(ci)) return ChunkState.PRESENT;
    return this.fetching.has(ci) ? ChunkState.FETCHING : ChunkState.ABSENT;
  }

  /** Number of PRESENT chunks. */
  readyCount(): number {
    let n = 0;
    for (let i = 0; i < this.chunkCount; i++) if (this.has(i)) n++;
    return n;
  }

  /**
   * Claims the ABSENT ones of `chunks` for the caller to fetch (they become FETCHING, owned
   * by the returned fill, which the caller must {@link ChunkFill.end}), and returns a wait
   * for each one another fill is fetching. PRESENT chunks are left out. FailedPrecondition
   * once the cache is closing; InvalidArgument for a chunk outside the blob.
   */
  claim<T extends CachedChunk>(chunks: readonly T[]): Claim<T> {
    if (this.closing) throw failedPrecondition(`cache of blob ${this.blobId} is closed`);
    const mine: T[] = [];
    const waits: Promise<void>[] = [];
    for (const c of chunks) {
      this.check(c);
      if (this.has(c.ciIndex)) continue;
      const other = this.fetching.get(c.ciIndex);
      if (other) waits.push(other.waitFor(c.ciIndex));
      else mine.push(c);
    }
    if (mine.length === 0) return { fill: undefined, waits };
    const fill = new ChunkFill<T>(this, mine);
    for (const c of mine) this.fetching.set(c.ciIndex, fill as unknown as ChunkFill<CachedChunk>);
    this.fills.add(fill as unknown as ChunkFill<CachedChunk>);
    this.holders++;
    return { fill, waits };
  }

  /**
   * Holds the data file open for reading `[offset, offset + length)` elsewhere (a FUSE
   * reply spliced from it): {@link close} waits until `release` is called. FailedPrecondition
   * once the cache is closing.
   */
  lease(): { fd: number; release: () => void } {
    if (this.closing) throw failedPrecondition(`cache of blob ${this.blobId} is closed`);
    this.holders++;
    let done = false;
    return {
      fd: this.fd,
      release: () => {
        if (done) return;
        done = true;
        this.letGo();
      },
    };
  }

  /** Reads `[offset, offset + length)` of the uncompressed blob from the data file. */
  read(offset: number, length: number): Uint8Array {
    if (this.closed) throw failedPrecondition(`cache of blob ${this.blobId} is closed`);
    const n = Math.max(0, Math.min(length, this.size - offset));
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const r = readSync(this.fd, out, done, n - done, offset + done);
      if (r === 0) break;
      done += r;
    }
    return out;
  }

  /** Makes published chunks durable: syncs the data file, then records their bits in the map. */
  flush(): void {
    if (this.dirty.size === 0 || this.closed) return;
    fdatasyncSync(this.fd);
    this.map.writeBytes(this.persisted, this.dirty);
    this.dirty.clear();
  }

  /** @internal Whether chunk `ci`'s bytes are durable from an earlier session (not yet re-checked). */
  isOnDisk(ci: number): boolean {
    return ((this.persisted[ci >> 3] as number) >> (ci & 7)) & 1 ? !this.has(ci) : false;
  }

  /**
   * Stops new claims and leases; once every fill has ended and every lease was released,
   * flushes and closes the files (at once when none is active). Idempotent; resolves when
   * the files are closed.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.finishClose = resolve;
    });
    if (this.holders === 0) this.closeFiles();
    return this.closing;
  }

  private closeFiles(): void {
    if (this.closed) return;
    try {
      this.flush();
    } finally {
      this.closed = true;
      closeSync(this.fd);
      this.map.close();
      this.finishClose?.();
    }
  }

  private letGo(): void {
    if (--this.holders === 0 && this.closing) this.closeFiles();
  }

  private check(c: CachedChunk): void {
    if (c.ciIndex < 0 || c.ciIndex >= this.chunkCount || c.uncompressedOffset < 0 || c.uncompressedOffset + c.uncompressedSize > this.size) {
      throw invalidArgument(`blob ${this.blobId}: chunk ${c.ciIndex} at ${c.uncompressedOffset}+${c.uncompressedSize} is outside the blob`);
    }
  }

  /** @internal A fill's chunk is written: PRESENT now, durable at the next flush. */
  publish(ci: number): void {
    Atomics.or(this.ready, ci >> 3, 1 << (ci & 7));
    this.persisted[ci >> 3] = (this.persisted[ci >> 3] ?? 0) | (1 << (ci & 7));
    this.fetching.delete(ci);
    this.dirty.add(ci >> 3);
    if (this.dirty.size >= this.flushEvery) this.flush();
  }

  /** @internal A fill gives up a chunk it did not write: ABSENT again. */
  abandon(ci: number, fill: ChunkFill<CachedChunk>): void {
    if (this.fetching.get(ci) === fill) this.fetching.delete(ci);
  }

  /** @internal A fill ended. */
  fillEnded(fill: ChunkFill<CachedChunk>): void {
    this.fills.delete(fill);
    this.letGo();
  }

  /** Resolves once every fill active now has ended (fills claimed later are not waited for). */
  settled(): Promise<void> {
    return Promise.all([...this.fills].map((f) => f.done)).then(() => {});
  }
}

/**
 * The chunks one fetch claimed ({@link BlobCache.claim}) and the right to publish them.
 * Its owner writes them (or has a thread write them through {@link fd}), publishes what was
 * written, and ends the fill exactly once, with the error that stopped it, if any.
 */
export class ChunkFill<T extends CachedChunk> {
  private readonly open = new Map<number, T>();
  private readonly waiters = new Map<number, Waiter>();
  private ended = false;
  private markDone!: () => void;
  /** Resolves when the fill has {@link end}ed. */
  readonly done = new Promise<void>((resolve) => {
    this.markDone = resolve;
  });

  /** @internal Made by {@link BlobCache.claim}. */
  constructor(
    private readonly cache: BlobCache,
    /** The claimed chunks, in the order given to claim. */
    readonly chunks: readonly T[],
  ) {
    for (const c of chunks) this.open.set(c.ciIndex, c);
  }

  /** The data file's descriptor: open until this fill {@link end}s. */
  get fd(): number {
    return this.cache.dataFd;
  }

  /**
   * Whether claimed chunk `ci`'s bytes were written in an earlier session (a cache opened
   * with `revalidate`): its owner may read them back, check them, and {@link published}
   * them instead of fetching; else it fetches as for any other chunk.
   */
  onDisk(ci: number): boolean {
    return this.open.has(ci) && this.cache.isOnDisk(ci);
  }

  /**
   * Writes chunk `c`'s uncompressed bytes at its offset and publishes it. InvalidArgument
   * when `c` is not one of this fill's open chunks or `bytes` is not its size.
   */
  write(c: T, bytes: Uint8Array): void {
    this.mustOwn(c.ciIndex);
    if (bytes.length !== c.uncompressedSize)
      throw invalidArgument(`blob ${this.cache.blobId}: chunk ${c.ciIndex} has ${bytes.length} bytes, expected ${c.uncompressedSize}`);
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(this.fd, bytes, done, bytes.length - done, c.uncompressedOffset + done);
      if (!(n > 0)) throw dataLoss(`blob ${this.cache.blobId}: writing chunk ${c.ciIndex} at ${c.uncompressedOffset + done} wrote ${n} bytes`);
      done += n;
    }
    this.publishOne(c.ciIndex);
  }

  /**
   * Publishes chunks whose bytes another thread wrote through {@link fd} (all of them, at
   * their offsets, before saying so). InvalidArgument for an index this fill does not own.
   */
  published(cis: readonly number[]): void {
    for (const ci of cis) this.mustOwn(ci);
    for (const ci of cis) this.publishOne(ci);
  }

  /** Resolves once chunk `ci` (claimed here) is present; rejects when the fill ends without it. */
  waitFor(ci: number): Promise<void> {
    let w = this.waiters.get(ci);
    if (!w) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A waiter nobody awaits (its reader went away) must not become an unhandled rejection.
      promise.catch(() => {});
      w = { promise, resolve, reject };
      this.waiters.set(ci, w);
    }
    return w.promise;
  }

  /**
   * Ends the fill: chunks not published go back to ABSENT and their waiters get `error` (or
   * a DataLoss naming them). Idempotent.
   */
  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    for (const ci of this.open.keys()) {
      this.cache.abandon(ci, this as unknown as ChunkFill<CachedChunk>);
      this.waiters.get(ci)?.reject(error ?? dataLoss(`blob ${this.cache.blobId}: the fetch of chunk ${ci} ended without it`));
    }
    this.open.clear();
    this.waiters.clear();
    this.cache.fillEnded(this as unknown as ChunkFill<CachedChunk>);
    this.markDone();
  }

  private mustOwn(ci: number): void {
    if (this.ended || !this.open.has(ci)) throw invalidArgument(`blob ${this.cache.blobId}: chunk ${ci} is not claimed by this fetch`);
  }

  private publishOne(ci: number): void {
    this.open.delete(ci);
    this.cache.publish(ci);
    this.waiters.get(ci)?.resolve();
    this.waiters.delete(ci);
  }
}
