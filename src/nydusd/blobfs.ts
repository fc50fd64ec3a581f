import type { BlobCache } from "../cache/index.ts";
import { invalidArgument, notFound } from "../errdefs/index.ts";
import { type Attr, type DirEntry, type FastReadRegistry, type FileRange, type ReadonlyFs, spanTable } from "../fuse/index.ts";
import type { Logger } from "../log/index.ts";
import { type ChunkHasher, chunkBytes, type ChunkInfo, decodeChunk, fastChunkHasher, planRange } from "../rafs/index.ts";
import type { BlobBackend } from "./backend.ts";
import type { BlobfsBlob } from "./blob-open.ts";
import { DecodeError, DecodePool } from "./decode-pool.ts";
import type { RateLimiter } from "./rate-limit.ts";

/** Options of {@link Blobfs}. */
export interface BlobfsOptions {
  /** Merge fetches of chunks closer than this many bytes (`amplify_io`); default 1 MiB. */
  amplifyIo?: number;
  /**
   * Most bytes fetched ahead of a sequential reader; default {@link READ_AHEAD}, 0 for none.
   * The window starts small and grows with the sequential run (twice what it has read).
   */
  readAhead?: number;
  /**
   * Threads that decompress, verify and cache fetched chunks ({@link DecodePool}), started on
   * the first fetch; default {@link DECODE_THREADS}. 0: the main thread does it.
   */
  decodeThreads?: number;
  logger: Logger;
}

/** Counters for the metrics endpoints. */
export interface BlobfsStats {
  reads: number;
  readErrors: number;
  fetches: number;
  fetchedBytes: number;
  chunksFetched: number;
  /** Prefetch: ranges asked for and bytes fetched for them. */
  prefetchRequests: number;
  prefetchBytes: number;
}

/**
 * Default decode threads. One: on these 2-core machines a second one only competes with the
 * main thread, the FUSE readers and the registry for the CPU (measured with
 * bench/lazy-read.ts, docs/nydusd.md).
 */
export const DECODE_THREADS = 1;

/**
 * Read-ahead: at most 32 MiB ahead, in requests of up to 4 MiB, 4 at a time — enough in
 * flight that fetching, decoding and answering overlap, in requests large enough that the
 * registry's cost per request does not dominate (measured with docker-registry on 2 cores:
 * 256 range requests of 1 MiB cost it 1.3 CPU-seconds, one of 256 MiB 0.1; cold sequential
 * reads went from ~300 to ~550 MiB/s with 4 MiB requests — docs/nydusd.md).
 */
export const READ_AHEAD = 32 << 20;
const READ_AHEAD_REQUEST = 4 << 20;
const READ_AHEAD_FETCHES = 4;

/** How far from the previous read's end a read may start and still count as sequential. */
const SEQUENTIAL_SLACK = 256 << 10;

interface Slot {
  ino: bigint;
  blob: BlobfsBlob;
  backend: BlobBackend;
  /** Instances using this blob. */
  refs: number;
  /** End of the last read, and how many reads in a row started near it (read-ahead). */
  lastEnd?: number;
  streak?: number;
  /** Where the current sequential run started (read-ahead window = 2 × its length). */
  runStart?: number;
}

/**
 * The read-only "blobfs" of a daemon: one file per blob of every mounted instance, named by
 * blob id and sized to the blob's uncompressed size, whose reads are served from the cache
 * and, for chunks not cached yet, fetched from the blob's backend, decompressed, optionally
 * verified, and cached first. Concurrent reads that need the same chunk share one fetch. A
 * failed fetch or a digest mismatch fails the read (EIO): wrong bytes are never returned.
 * Blobs are added and removed as instances come and go (shared by reference count), so one
 * FUSE mount — one `/dev/fuse` descriptor for failover — serves the whole daemon.
 *
 * Warm reads: every blob is registered with the session's fast path ({@link attachFastRead}),
 * so reads whose chunks are all cached are answered by the FUSE reader threads straight from
 * the cache file; only the others reach {@link read}. `stats.reads` counts both (the fast
 * ones approximately); `readErrors` only happen here and are exact.
 */
export class Blobfs implements ReadonlyFs {
  /** Counters; `reads` includes the reads the fast path served. */
  readonly stats: BlobfsStats;
  /** EROFS caches what it reads from a blob file: the kernel keeps no second copy. */
  readonly directIo = true;
  private mainReads = 0;
  private fast: FastReadRegistry | undefined;
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly byIno = new Map<bigint, Slot>();
  private readonly byId = new Map<string, Slot>();
  /**
   * Every blob id ever served → its inode. A blob served again (an image removed and pulled
   * again) gets its old inode back: the kernel may still hold the name → inode mapping in its
   * dentry cache, and a new number would make reads through that dentry fail.
   */
  private readonly inoHistory = new Map<string, bigint>();
  private nextIno = 2n;
  private readonly log: Logger;
  /** blake3 in WebAssembly for digest checks (created once per blobfs, on first use). */
  private hasher: Promise<ChunkHasher> | undefined;
  private readonly pool: DecodePool | undefined;
  /** `amplify_io` (default 1 MiB): merge distance and size of on-demand requests. */
  private readonly amplifyIo: number;
  /**
   * Decode jobs running per blob cache: a cache whose blob is removed meanwhile is closed
   * when its last job ends (the workers write through its descriptor).
   */
  private readonly jobs = new Map<BlobCache, number>();
  private readonly closeWhenIdle = new Set<BlobCache>();

  constructor(private readonly opts: BlobfsOptions) {
    this.log = opts.logger.withTag("blobfs");
    this.amplifyIo = opts.amplifyIo ?? 1 << 20;
    const threads = opts.decodeThreads ?? DECODE_THREADS;
    this.pool = threads > 0 ? new DecodePool(threads) : undefined;
    const stats = { readErrors: 0, fetches: 0, fetchedBytes: 0, chunksFetched: 0, prefetchRequests: 0, prefetchBytes: 0 } as BlobfsStats;
    Object.defineProperty(stats, "reads", { enumerable: true, get: () => this.mainReads + (this.fast?.servedReads() ?? 0) });
    this.stats = stats;
  }

  /**
   * Registers every blob (now and as they are added) with a FUSE session's fast path, which
   * then serves reads of cached chunks without calling {@link read}.
   */
  attachFastRead(fast: FastReadRegistry): void {
    this.fast = fast;
    for (const s of this.byIno.values()) this.register(s);
  }

  /** Registers `s` with the fast path; without one (or when that fails) reads all come here. */
  private register(s: Slot): void {
    if (!this.fast) return;
    const b = s.blob;
    try {
      const spans = spanTable(b.meta.chunks.map((c) => ({ start: c.uncompressedOffset, size: c.uncompressedSize, bit: c.ciIndex })));
      if (!this.fast.register(s.ino, { fd: b.cache.dataFd, size: b.entry.uncompressedSize, spans, bitmap: b.cache.bitmap })) {
        this.log.warn(`blob ${b.entry.blobId}: reads all take the main thread (the fast path ended or cannot reopen the cache file)`);
      }
    } catch (err) {
      this.log.warn(`blob ${b.entry.blobId}: reads all take the main thread:`, err);
    }
  }

  /**
   * Serves `blob` (read through `backend`) as inode `ino` (default: the next free), or counts
   * one more user of a blob already served — then `blob`'s own cache is closed and the
   * served one kept.
   */
  add(blob: BlobfsBlob, backend: BlobBackend, ino?: bigint): void {
    const have = this.byId.get(blob.entry.blobId);
    if (have) {
      have.refs++;
      if (have.blob !== blob) blob.cache.close();
      return;
    }
    // A successor taking over a live FUSE connection must keep the inode numbers the kernel
    // already knows (`ino`); otherwise the next free one.
    const slot: Slot = { ino: ino ?? this.inoHistory.get(blob.entry.blobId) ?? this.nextIno, blob, backend, refs: 1 };
    if (slot.ino >= this.nextIno) this.nextIno = slot.ino + 1n;
    this.inoHistory.set(blob.entry.blobId, slot.ino);
    this.byIno.set(slot.ino, slot);
    this.byId.set(blob.entry.blobId, slot);
    this.register(slot);
  }

  /**
   * Counts one more user of `blobId` when it is served already (then the caller need not
   * open it: see {@link add}); false when it is not.
   */
  acquire(blobId: string): boolean {
    const have = this.byId.get(blobId);
    if (have) have.refs++;
    return have !== undefined;
  }

  /** The inode number of `blobId`, if served. */
  inoOf(blobId: string): bigint | undefined {
    return this.byId.get(blobId)?.ino;
  }

  /** Drops one user of `blobId`; the last one closes its cache and removes the file. */
  remove(blobId: string): void {
    const slot = this.byId.get(blobId);
    if (!slot || --slot.refs > 0) return;
    // The readers stop using the cache file before it is closed (fast-read.ts handshake).
    this.fast?.unregister(slot.ino);
    if (this.jobs.has(slot.blob.cache)) this.closeWhenIdle.add(slot.blob.cache);
    else slot.blob.cache.close();
    this.byId.delete(blobId);
    this.byIno.delete(slot.ino);
  }

  private slotOf(ino: bigint): Slot {
    const s = this.byIno.get(ino);
    if (!s) throw notFound(`blobfs inode ${ino}`);
    return s;
  }

  private attrOf(s: Slot): Attr {
    return { ino: s.ino, mode: 0o100444, size: s.blob.entry.uncompressedSize, nlink: 1, uid: 0, gid: 0, mtime: 0 };
  }

  lookup(parent: bigint, name: string): Attr | undefined {
    if (parent !== 1n) return undefined;
    const s = this.byId.get(name);
    return s ? this.attrOf(s) : undefined;
  }

  getattr(ino: bigint): Attr | undefined {
    if (ino === 1n) return { ino, mode: 0o040555, size: 0, nlink: 2, uid: 0, gid: 0, mtime: 0 };
    const s = this.byIno.get(ino);
    return s ? this.attrOf(s) : undefined;
  }

  readdir(ino: bigint): DirEntry[] {
    if (ino !== 1n) return [];
    return [...this.byId.values()].map((s) => ({ name: s.blob.entry.blobId, ino: s.ino, type: 8 }));
  }

  totals() {
    let blocks = 0;
    for (const s of this.byId.values()) blocks += Math.ceil(s.blob.entry.uncompressedSize / 4096);
    return { blocks, files: this.byId.size + 1 };
  }

  async read(ino: bigint, offset: number, size: number): Promise<Uint8Array> {
    const r = await this.readSource(ino, offset, size);
    return this.slotOf(ino).blob.cache.read(r.offset, r.length);
  }

  /** {@link read} for the session: where in the cache file the bytes are, once cached. */
  async readSource(ino: bigint, offset: number, size: number): Promise<FileRange> {
    const slot = this.slotOf(ino);
    const b = slot.blob;
    const length = Math.max(0, Math.min(size, b.entry.uncompressedSize - offset));
    if (length === 0) return { fd: b.cache.dataFd, offset, length: 0 };
    this.mainReads++;
    try {
      await this.ensure(b, slot.backend, offset, length);
      this.readAhead(slot, offset, length);
    } catch (err) {
      this.stats.readErrors++;
      this.log.error(`blob ${b.entry.blobId} read ${offset}+${length} failed:`, err);
      throw err;
    }
    return { fd: b.cache.dataFd, offset, length };
  }

  /** A read the fast path served whose next bytes are not cached: maybe read ahead. */
  readServedFast(ino: bigint, offset: number, length: number): void {
    const slot = this.byIno.get(ino);
    if (slot) this.readAhead(slot, offset, length);
  }

  /**
   * Read-ahead, for sequential readers only (the third read in a row starting near where the
   * previous one of this blob ended — by this thread or the fast path; requests may arrive
   * slightly out of order): fetch what follows before it is asked for. Lone reads — small
   * files — fetch only what they cover.
   */
  private readAhead(slot: Slot, offset: number, length: number): void {
    const b = slot.blob;
    const most = this.opts.readAhead ?? READ_AHEAD;
    const fastEnd = this.fast?.lastEnd(slot.ino) ?? -1;
    // The fast path's last read may be this very one (a report) or one just before it.
    // Requests of one read-ahead window arrive in parallel and out of order: the slack grows
    // with the request size (EROFS read-ahead windows, up to 512 KiB here).
    const slack = Math.max(SEQUENTIAL_SLACK, 4 * length);
    const near =
      (slot.lastEnd !== undefined && Math.abs(offset - slot.lastEnd) <= slack) ||
      (fastEnd >= 0 && fastEnd >= offset - slack && fastEnd <= offset + length + slack);
    slot.streak = near ? (slot.streak ?? 0) + 1 : 0;
    if (!near || slot.runStart === undefined) slot.runStart = offset;
    slot.lastEnd = offset + length;
    const ahead = Math.min(most, Math.max(1 << 20, 2 * (offset + length - slot.runStart)));
    if (slot.streak >= 2 && most > 0 && offset + length < b.entry.uncompressedSize && !this.cachedAt(b, offset + length)) {
      void this.prefetch(b.entry.blobId, { offset: offset + length, length: ahead, concurrency: READ_AHEAD_FETCHES, requestSize: READ_AHEAD_REQUEST });
    }
  }

  /**
   * Makes every chunk covering `[offset, offset+length)` present in the cache. Chunks already
   * being fetched are waited for, never fetched twice; the others are fetched in runs of
   * consecutive chunks (a planned range split where an in-flight chunk sits).
   */
  private async ensure(b: BlobfsBlob, backend: BlobBackend, offset: number, length: number, requestSize = this.amplifyIo): Promise<void> {
    const plan = planRange(b.entry, b.meta.chunks, offset, length, { maxGap: this.amplifyIo, maxSize: requestSize });
    const waits: Promise<void>[] = [];
    const key = (c: ChunkInfo) => `${b.entry.blobId}/${c.ciIndex}`;
    for (const f of plan.fetches) {
      let run: ChunkInfo[] = [];
      const flush = () => {
        if (run.length) waits.push(this.fetchRun(b, backend, run));
        run = [];
      };
      for (const c of f.chunks) {
        if (b.cache.has(c.ciIndex)) continue;
        const pending = this.inflight.get(key(c));
        if (pending) {
          flush();
          waits.push(pending);
        } else {
          run.push(c);
        }
      }
      flush();
    }
    await Promise.all(waits);
  }

  /** Fetches one run of consecutive chunks (one range request) into the cache. */
  private fetchRun(b: BlobfsBlob, backend: BlobBackend, chunks: ChunkInfo[]): Promise<void> {
    const first = chunks[0] as ChunkInfo;
    const last = chunks[chunks.length - 1] as ChunkInfo;
    const f = { offset: first.compressedOffset, length: last.compressedOffset + last.compressedSize - first.compressedOffset, chunks };
    const job = (async () => {
      this.stats.fetches++;
      const data = await backend.read(b.entry.blobId, f.offset, f.length);
      this.stats.fetchedBytes += data.length;
      if (data.length !== f.length) throw invalidArgument(`blob ${b.entry.blobId}: read ${f.offset}+${f.length} returned ${data.length} bytes`);
      const todo = chunks.filter((c) => !b.cache.has(c.ciIndex));
      // Handing bytes to a thread costs a copy: only worth it for real work (decompressing,
      // hashing); stored chunks without a digest check are just written from here.
      const work = todo.some((c) => c.compressed || b.digests.has(c.ciIndex));
      if (this.pool && work) return this.decodeElsewhere(b, this.pool, data, f.offset, todo);
      let hasher: ChunkHasher | undefined;
      if (b.digests.size > 0) {
        this.hasher ??= fastChunkHasher();
        hasher = await this.hasher;
      }
      for (const c of todo) {
        const bytes = decodeChunk(b.entry, c, chunkBytes(f, data, c), { expectedDigest: b.digests.get(c.ciIndex), hasher });
        b.cache.put(c.ciIndex, c.uncompressedOffset, bytes);
        this.stats.chunksFetched++;
      }
    })();
    const keyOf = (c: ChunkInfo) => `${b.entry.blobId}/${c.ciIndex}`;
    for (const c of chunks) this.inflight.set(keyOf(c), job);
    return job.finally(() => {
      for (const c of chunks) if (this.inflight.get(keyOf(c)) === job) this.inflight.delete(keyOf(c));
    });
  }

  /**
   * Hands fetched chunks to the decode pool, which writes them into `b`'s cache file; marks
   * the chunks it wrote ready — also those before a chunk that failed, whose error is thrown.
   */
  private async decodeElsewhere(b: BlobfsBlob, pool: DecodePool, data: Uint8Array, base: number, chunks: ChunkInfo[]): Promise<void> {
    if (chunks.length === 0) return;
    const cache = b.cache;
    this.jobs.set(cache, (this.jobs.get(cache) ?? 0) + 1);
    let written: number[] = [];
    try {
      const digests = chunks.map((c) => b.digests.get(c.ciIndex));
      written = await pool.decode({ blob: b.entry, fd: cache.dataFd, data, base, chunks, digests }).catch((e: unknown) => {
        if (e instanceof DecodeError) written = (e as DecodeError).written;
        throw e;
      });
    } finally {
      const left = (this.jobs.get(cache) ?? 1) - 1;
      if (left > 0) this.jobs.set(cache, left);
      else this.jobs.delete(cache);
      if (this.closeWhenIdle.has(cache)) {
        if (left === 0) {
          this.closeWhenIdle.delete(cache);
          cache.close();
        }
      } else {
        for (const ci of written) cache.markWritten(ci);
        this.stats.chunksFetched += written.length;
      }
    }
  }

  /**
   * Prefetch: makes `[offset, offset+length)` of blob `blobId` cached (all of it when no range
   * is given), `concurrency` fetch groups at a time, each after `limiter` allows its bytes
   * (`bandwidth_rate`), stopping early when `signal` aborts.
   * Failures are logged and counted, never thrown: prefetch is best effort, reads retry.
   */
  async prefetch(
    blobId: string,
    opts: { offset?: number; length?: number; concurrency?: number; requestSize?: number; signal?: AbortSignal; limiter?: RateLimiter } = {},
  ): Promise<void> {
    const slot = this.byId.get(blobId);
    if (!slot) return;
    const b = slot.blob;
    const offset = opts.offset ?? 0;
    const length = Math.min(opts.length ?? b.entry.uncompressedSize, b.entry.uncompressedSize - offset);
    if (length <= 0) return;
    const requestSize = opts.requestSize ?? this.amplifyIo;
    const plan = planRange(b.entry, b.meta.chunks, offset, length, { maxGap: this.amplifyIo, maxSize: requestSize });
    const todo = plan.fetches.filter((f) => f.chunks.some((c) => !b.cache.has(c.ciIndex)));
    let next = 0;
    const worker = async () => {
      while (next < todo.length && !opts.signal?.aborted && this.byId.get(blobId) === slot) {
        const f = todo[next++];
        if (!f) return;
        // `fs_prefetch.bandwidth_rate`: false when aborted while waiting.
        if (opts.limiter && !(await opts.limiter.take(f.length, opts.signal))) return;
        this.stats.prefetchRequests++;
        const before = this.stats.fetchedBytes;
        try {
          const first = f.chunks[0] as (typeof f.chunks)[number];
          const last = f.chunks[f.chunks.length - 1] as (typeof f.chunks)[number];
          await this.ensure(b, slot.backend, first.uncompressedOffset, last.uncompressedOffset + last.uncompressedSize - first.uncompressedOffset, requestSize);
        } catch (err) {
          this.log.warn(`prefetch of blob ${blobId} at ${f.offset}+${f.length} failed:`, err);
        }
        this.stats.prefetchBytes += this.stats.fetchedBytes - before;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  }

  /** True when the chunk covering uncompressed `offset` of `b` is cached (or a gap). */
  private cachedAt(b: BlobfsBlob, offset: number): boolean {
    const plan = planRange(b.entry, b.meta.chunks, offset, 1);
    return plan.chunks.every((c) => b.cache.has(c.ciIndex));
  }

  /** True when every chunk of every blob is cached. */
  allReady(): boolean {
    for (const s of this.byId.values()) if (s.blob.cache.readyCount() < s.blob.meta.chunks.length) return false;
    return true;
  }

  /** The cache data files behind `blobIds` (all blobs when omitted): `underlying_files`. */
  underlyingFiles(blobIds?: readonly string[]): string[] {
    const slots = blobIds ? blobIds.map((id) => this.byId.get(id)).filter((s) => s !== undefined) : [...this.byId.values()];
    return slots.map((s) => s.blob.cache.dataPath);
  }

  /** Stops the decode threads, then flushes and closes every blob cache. */
  close(): void {
    this.pool?.close();
    for (const c of this.closeWhenIdle) c.close();
    this.closeWhenIdle.clear();
    for (const s of this.byId.values()) {
      this.fast?.unregister(s.ino);
      s.blob.cache.close();
    }
    this.byId.clear();
    this.byIno.clear();
  }
}
