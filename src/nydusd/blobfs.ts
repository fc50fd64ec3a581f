import type { ChunkFill } from "../cache/index.ts";
import { dataLoss, ErrorKind, failedPrecondition, kindOf, notFound, unavailable } from "../errdefs/index.ts";
import { type Attr, type DirEntry, type FastReadRegistry, type FileRange, type ReadonlyFs, spanTable } from "../fuse/index.ts";
import type { Logger } from "../log/index.ts";
import { type BlobEntry, type ChunkHasher, chunkBytes, type ChunkInfo, type ChunkTableEntry, decodeChunk, fastChunkHasher, planRange } from "../rafs/index.ts";
import type { BlobBackend } from "./backend.ts";
import type { BlobfsBlob } from "./blob-open.ts";
import { firstMismatch, publishable, shareConflict, trustedOnDisk } from "./blob-trust.ts";
import { DecodeError, DecodePool } from "./decode-pool.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { AccessRecord } from "./access-record.ts";
import { READ_AHEAD, READ_AHEAD_FETCHES, READ_AHEAD_REQUEST, readAheadBytes, type SequentialRun } from "./read-ahead.ts";

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
  /** Chunks found in the cache from an earlier session, re-checked and served without a fetch. */
  chunksRevalidated: number;
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

interface Slot extends SequentialRun {
  ino: bigint;
  blob: BlobfsBlob;
  backend: BlobBackend;
  /** Instances using this blob. */
  refs: number;
  /** The first reads since the blob was served (access-record.ts). */
  record?: AccessRecord;
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
  /** Orders first reads across blobs (access records). */
  private accessSeq = 0;
  private fast: FastReadRegistry | undefined;
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
  /** Fetch failures already logged (by {@link fetchRun}); the reads they fail do not log again. */
  private readonly logged = new WeakSet<Error>();

  constructor(private readonly opts: BlobfsOptions) {
    this.log = opts.logger.withTag("blobfs");
    this.amplifyIo = opts.amplifyIo ?? 1 << 20;
    const threads = opts.decodeThreads ?? DECODE_THREADS;
    this.pool = threads > 0 ? new DecodePool(threads) : undefined;
    const stats = { readErrors: 0, fetches: 0, fetchedBytes: 0, chunksFetched: 0, chunksRevalidated: 0, prefetchRequests: 0, prefetchBytes: 0 } as BlobfsStats;
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
      const bitmap = s.record?.recording ? s.record.seen : b.cache.bitmap;
      if (!this.fast.register(s.ino, { fd: b.cache.dataFd, size: b.entry.uncompressedSize, spans, bitmap })) {
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
      if (have.blob !== blob) void blob.cache.close();
      return;
    }
    // A successor taking over a live FUSE connection must keep the inode numbers the kernel
    // already knows (`ino`); otherwise the next free one.
    const slot: Slot = { ino: ino ?? this.inoHistory.get(blob.entry.blobId) ?? this.nextIno, blob, backend, refs: 1 };
    if (slot.ino >= this.nextIno) this.nextIno = slot.ino + 1n;
    this.inoHistory.set(blob.entry.blobId, slot.ino);
    this.byIno.set(slot.ino, slot);
    this.byId.set(blob.entry.blobId, slot);
    // Recording ends: the fast path gets the cache's bitmap (if the blob is still served).
    slot.record = new AccessRecord(blob.meta.chunks.length, () => this.byIno.get(slot.ino) === slot && this.register(slot));
    this.register(slot);
  }

  /**
   * Counts one more user of blob `entry` when it is served already (then the caller need not
   * open it: see {@link add}); false when it is not. The new user's expectations — its chunk
   * table entries for the blob, `chunks` — must agree with the served blob: the same layout,
   * a CI table placing each chunk where it expects it, and the same digest for every chunk
   * both know (its other digests are added). From the first share on, the blob's fetches are
   * verified whatever `digest_validate` says, and the chunks fetched unverified before are
   * checked now against the digests both know (after the fetches in flight end). Throws
   * FailedPrecondition, sharing nothing, when anything disagrees, or when the served blob
   * has no digests (another image's unchecked chunks may be present) and the new user has.
   */
  async acquire(entry: BlobEntry, chunks: readonly ChunkTableEntry[]): Promise<boolean> {
    const have = this.byId.get(entry.blobId);
    if (!have) return false;
    const b = have.blob;
    const refuse = (why: string) =>
      failedPrecondition(`blob ${entry.blobId} is served already for an image that expects other content (${why}); mount this image in a daemon of its own`);
    const conflict = shareConflict(b, entry, chunks);
    if (conflict) throw refuse(conflict);
    // Counted before waiting, so the blob stays served meanwhile; given back when refused.
    have.refs++;
    if (!b.verify) {
      b.verify = true;
      await b.cache.settled();
      if (b.digests.size > 0) b.tainted = firstMismatch(b, await this.chunkHasher());
    }
    if (b.tainted !== undefined) {
      // Present chunks stay present: every later image is refused the same way.
      this.remove(entry.blobId);
      throw refuse(`chunk ${b.tainted} in the cache does not match its digest`);
    }
    return true;
  }

  /** The chunk hasher (made once, on first use). */
  private chunkHasher(): Promise<ChunkHasher> {
    this.hasher ??= fastChunkHasher();
    return this.hasher;
  }

  /** Chunks of all the blobs served (what {@link ChunkLimit} bounds). */
  servedChunks(): number {
    let n = 0;
    for (const s of this.byId.values()) n += s.blob.entry.chunkCount;
    return n;
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
    slot.record?.end();
    this.fast?.unregister(slot.ino);
    // Closes once the fetches writing it and the replies reading it are done.
    void slot.blob.cache.close();
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
    try {
      return this.slotOf(ino).blob.cache.read(r.offset, r.length);
    } finally {
      r.release?.();
    }
  }

  /**
   * {@link read} for the session: where in the cache file the bytes are, once cached, with
   * the cache file held open until the session releases the range. Failures of the fetch
   * are logged once where they happen ({@link fetchRun}); others here.
   */
  async readSource(ino: bigint, offset: number, size: number): Promise<FileRange> {
    const slot = this.slotOf(ino);
    const b = slot.blob;
    const length = Math.max(0, Math.min(size, b.entry.uncompressedSize - offset));
    if (length > 0) {
      this.mainReads++;
      try {
        await this.ensure(b, slot.backend, offset, length);
        if (slot.record?.recording) slot.record.note(planRange(b.entry, b.meta.chunks, offset, length).chunks, () => this.accessSeq++);
        this.readAhead(slot, offset, length);
      } catch (err) {
        this.stats.readErrors++;
        if (!this.logged.has(err as Error)) this.log.error(`blob ${b.entry.blobId} read ${offset}+${length} failed:`, err);
        throw err;
      }
    }
    const lease = b.cache.lease();
    return { fd: lease.fd, offset, length, release: lease.release };
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
    const ahead = readAheadBytes(slot, offset, length, this.fast?.lastEnd(slot.ino) ?? -1, this.opts.readAhead ?? READ_AHEAD);
    if (ahead > 0 && offset + length < b.entry.uncompressedSize && !this.cachedAt(b, offset + length)) {
      void this.prefetch(b.entry.blobId, { offset: offset + length, length: ahead, concurrency: READ_AHEAD_FETCHES, requestSize: READ_AHEAD_REQUEST });
    }
  }

  /**
   * Makes every chunk covering `[offset, offset+length)` present in the cache. The blob
   * cache decides who fetches what ({@link BlobCache.claim}): chunks another fetch has in
   * flight are waited for, never fetched twice, and the others are fetched here in runs of
   * consecutive claimed chunks, one range request each.
   *
   * A fetch this call joined may fail after its own retries (a read-ahead that started while
   * the registry was failing): the range is then ensured once more with this call's own fetch,
   * so a read gets a full set of retries of its own before its EIO. Its own fetch failing
   * rejects at once.
   */
  private async ensure(b: BlobfsBlob, backend: BlobBackend, offset: number, length: number, requestSize = this.amplifyIo, again = true): Promise<void> {
    const plan = planRange(b.entry, b.meta.chunks, offset, length, { maxGap: this.amplifyIo, maxSize: requestSize });
    const joined: Promise<void>[] = [];
    const own: Promise<void>[] = [];
    for (const f of plan.fetches) {
      const claim = b.cache.claim(f.chunks);
      joined.push(...claim.waits);
      if (claim.fill) own.push(this.fetchFill(b, backend, f.chunks, claim.fill));
    }
    const [mine, theirs] = await Promise.all([Promise.allSettled(own), Promise.allSettled(joined)]);
    const failed = mine.find((r) => r.status === "rejected") ?? (again ? undefined : theirs.find((r) => r.status === "rejected"));
    if (failed) throw (failed as PromiseRejectedResult).reason;
    if (theirs.some((r) => r.status === "rejected")) await this.ensure(b, backend, offset, length, requestSize, false);
  }

  /**
   * Fetches the chunks `fill` claimed out of `planned` (sorted by compressed offset): one
   * range request per run of claimed chunks — a chunk present or in flight elsewhere splits
   * the run, so no byte is fetched twice — then ends the fill with the first error.
   */
  private async fetchFill(b: BlobfsBlob, backend: BlobBackend, planned: readonly ChunkInfo[], fill: ChunkFill<ChunkInfo>): Promise<void> {
    const mine = new Set(fill.chunks.map((c) => c.ciIndex));
    for (const ci of await this.adoptOnDisk(b, fill)) mine.delete(ci);
    const runs: ChunkInfo[][] = [];
    let run: ChunkInfo[] = [];
    for (const c of planned) {
      if (mine.has(c.ciIndex)) run.push(c);
      else if (run.length > 0) {
        runs.push(run);
        run = [];
      }
    }
    if (run.length > 0) runs.push(run);
    const settled = await Promise.allSettled(runs.map((r) => this.fetchRun(b, backend, r, fill)));
    const failed = settled.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
    fill.end(failed?.reason as Error | undefined);
    if (failed) throw failed.reason;
  }

  /**
   * Chunks `fill` claimed whose bytes an earlier session left in the cache: each is read
   * back and checked against the blob's digest, and published when it matches (no fetch).
   * Returns the chunks published; the others are fetched like any absent chunk. A chunk
   * without a digest is taken only when the blob checks no digests at all.
   */
  private async adoptOnDisk(b: BlobfsBlob, fill: ChunkFill<ChunkInfo>): Promise<number[]> {
    const found = fill.chunks.filter((c) => fill.onDisk(c.ciIndex));
    if (found.length === 0) return [];
    const good = trustedOnDisk(b, found, b.digests.size > 0 ? await this.chunkHasher() : undefined);
    fill.published(good);
    this.stats.chunksRevalidated += good.length;
    return good;
  }

  /**
   * Fetches one run of consecutive chunks (one range request), decodes and verifies them and
   * has `fill` publish each one written. A failure — the backend's, a short body, a chunk
   * that does not decompress or verify, a failed write — is logged once here, naming the
   * blob, the chunks and both ranges, and thrown as DataLoss (Unavailable for the backend):
   * the readers get EIO and nothing unwritten is published.
   */
  private async fetchRun(b: BlobfsBlob, backend: BlobBackend, chunks: ChunkInfo[], fill: ChunkFill<ChunkInfo>): Promise<void> {
    const first = chunks[0] as ChunkInfo;
    const last = chunks[chunks.length - 1] as ChunkInfo;
    const f = { offset: first.compressedOffset, length: last.compressedOffset + last.compressedSize - first.compressedOffset, chunks };
    const where = `blob ${b.entry.blobId} chunks ${first.ciIndex}..${last.ciIndex} (compressed ${f.offset}+${f.length}, uncompressed ${first.uncompressedOffset}+${last.uncompressedOffset + last.uncompressedSize - first.uncompressedOffset})`;
    try {
      this.stats.fetches++;
      let data: Uint8Array;
      try {
        data = await backend.read(b.entry.blobId, f.offset, f.length);
      } catch (e) {
        throw unavailable(`${where}: fetch from ${backend.name} failed: ${(e as Error).message}`, e);
      }
      this.stats.fetchedBytes += data.length;
      if (data.length !== f.length) throw dataLoss(`${where}: the backend returned ${data.length} bytes`);
      // Handing bytes to a thread costs a copy: only worth it for real work (decompressing,
      // hashing); stored chunks without a digest check are just written from here.
      // Verified when the blob says so (digest_validate, or shared by several images).
      const expect = (ci: number) => (b.verify ? b.digests.get(ci) : undefined);
      const work = chunks.some((c) => c.compressed || expect(c.ciIndex) !== undefined);
      if (this.pool && work) return await this.decodeElsewhere(b, this.pool, data, f.offset, chunks, fill, where);
      let hasher: ChunkHasher | undefined;
      if (b.verify && b.digests.size > 0) hasher = await this.chunkHasher();
      for (const c of chunks) {
        let bytes: Uint8Array;
        try {
          bytes = decodeChunk(b.entry, c, chunkBytes(f, data, c), { expectedDigest: expect(c.ciIndex), hasher });
        } catch (e) {
          throw dataLoss(`${where}: ${(e as Error).message}`, e);
        }
        if (publishable(b, c.ciIndex)) fill.write(c, bytes);
        this.stats.chunksFetched++;
      }
    } catch (err) {
      const e =
        kindOf(err) === ErrorKind.Unavailable || kindOf(err) === ErrorKind.DataLoss ? (err as Error) : dataLoss(`${where}: ${(err as Error).message}`, err);
      this.logged.add(e);
      this.log.error(e.message);
      throw e;
    }
  }

  /**
   * Hands fetched chunks to the decode pool, which writes them through `fill`'s descriptor
   * (open until the fill ends); publishes the chunks it wrote — also those before a chunk
   * that failed, whose error is thrown as DataLoss.
   */
  private async decodeElsewhere(
    b: BlobfsBlob,
    pool: DecodePool,
    data: Uint8Array,
    base: number,
    chunks: ChunkInfo[],
    fill: ChunkFill<ChunkInfo>,
    where: string,
  ): Promise<void> {
    const digests = chunks.map((c) => (b.verify ? b.digests.get(c.ciIndex) : undefined));
    let written: number[];
    try {
      written = await pool.decode({ blob: b.entry, fd: fill.fd, data, base, chunks, digests });
    } catch (e) {
      if (e instanceof DecodeError) {
        const done = (e as DecodeError).written.filter((ci) => publishable(b, ci));
        fill.published(done);
        this.stats.chunksFetched += done.length;
      }
      throw dataLoss(`${where}: ${(e as Error).message}`, e);
    }
    fill.published(written.filter((ci) => publishable(b, ci)));
    this.stats.chunksFetched += written.length;
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
          await this.ensure(
            b,
            slot.backend,
            first.uncompressedOffset,
            last.uncompressedOffset + last.uncompressedSize - first.uncompressedOffset,
            requestSize,
            false,
          );
        } catch (err) {
          if (!this.logged.has(err as Error)) this.log.warn(`prefetch of blob ${blobId} at ${f.offset}+${f.length} failed:`, err);
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

  /** The first reads of `blobIds` recorded so far (access-record.ts), by blob id. */
  accessRecords(blobIds: readonly string[]): Map<string, AccessRecord> {
    return new Map(
      blobIds.flatMap((id) => {
        const r = this.byId.get(id)?.record;
        return r ? [[id, r] as const] : [];
      }),
    );
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

  /**
   * Stops the decode threads, then closes every blob cache (each flushes and closes its files
   * once the fetches that were running have ended).
   */
  close(): void {
    this.pool?.close();
    for (const s of this.byId.values()) {
      s.record?.end();
      this.fast?.unregister(s.ino);
      void s.blob.cache.close();
    }
    this.byId.clear();
    this.byIno.clear();
  }
}
