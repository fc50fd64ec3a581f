/**
 * The learned startup working set: which chunks of a blob are read first after it is served,
 * in order, and — mapped through an image's chunk indexes — which files
 * (`GET /api/v1/rafsnap/prefetch-list`, `rafsnap prefetch-list`). Bounded: per blob the
 * first {@link RECORD_CHUNKS} chunks within {@link RECORD_MILLIS} of it being served.
 *
 * While a blob records, the FUSE fast path is given this record's bitmap instead of the
 * cache's: a chunk is served by the reader threads only once a read of it reached the main
 * thread (which notes it), so first reads are seen even when the chunk was fetched before
 * (read-ahead, merged requests, an earlier session's cache). That costs one main-thread trip
 * per chunk first read, for the recording window only.
 */
import { bitSet, publishBit } from "../fuse/index.ts";
import { closeSync } from "node:fs";
import { invalidArgument } from "../errdefs/index.ts";
import { type ChunkInfo, MAX_PREFETCH_PATHS, openBootstrapBytes, type RafsImage, walkTree } from "../rafs/index.ts";
import { LayerFileError, openRegular, readLayerFile } from "../sys/index.ts";

/** Chunks recorded per blob at most; the record then ends. */
export const RECORD_CHUNKS = 1 << 16;
/** How long after a blob is first served its reads are recorded (ms). */
export const RECORD_MILLIS = 120_000;
/** Most paths walked when mapping a record to files. */
const MAX_WALK = 1 << 20;

/** The first reads of one served blob. */
export class AccessRecord {
  /** Chunk-info indexes in first-read order, each with the daemon-wide read sequence number. */
  readonly order: { seq: number; ci: number }[] = [];
  /** Chunks read at least once (the fast path's bitmap while recording). */
  readonly seen: Uint8Array;
  private active = true;
  private readonly timer: ReturnType<typeof setTimeout>;

  /** Starts recording a blob of `chunkCount` chunks; `onEnd` runs once when it ends. */
  constructor(
    chunkCount: number,
    private readonly onEnd: () => void,
  ) {
    const bytes = Math.ceil(chunkCount / 8);
    this.seen = new Uint8Array(new SharedArrayBuffer(Math.max(4, bytes)), 0, bytes);
    this.timer = setTimeout(() => this.end(), RECORD_MILLIS);
    this.timer.unref?.();
  }

  /** True until the window or the chunk budget is used up (or {@link end}). */
  get recording(): boolean {
    return this.active;
  }

  /** Notes a main-thread read of `chunks` (now cached); `seq` orders reads across blobs. */
  note(chunks: readonly ChunkInfo[], seq: () => number): void {
    if (!this.active) return;
    for (const c of chunks) {
      if (bitSet(this.seen, c.ciIndex)) continue;
      this.order.push({ seq: seq(), ci: c.ciIndex });
      publishBit(this.seen, c.ciIndex);
      if (this.order.length >= RECORD_CHUNKS) return this.end();
    }
  }

  /** Stops recording (idempotent); the fast path is then handed the cache's bitmap. */
  end(): void {
    if (!this.active) return;
    this.active = false;
    clearTimeout(this.timer);
    this.onEnd();
  }
}

/**
 * The files of `image` in the order their data was first read, from the records of its blobs
 * (`records` by blob id; blobs without one are skipped): each recorded chunk names the file
 * whose chunk index points at it (the first path in tree order when several do — hard links,
 * deduplicated chunks). At most `limit` paths. Throws as {@link walkTree} for a malformed
 * bootstrap.
 */
export function recordedFiles(image: RafsImage, records: ReadonlyMap<string, readonly { seq: number; ci: number }[]>, limit: number): string[] {
  const reads: { seq: number; key: string }[] = [];
  image.blobs.forEach((b, i) => {
    for (const r of records.get(b.blobId) ?? []) reads.push({ seq: r.seq, key: `${i}:${r.ci}` });
  });
  if (reads.length === 0) return [];
  const wanted = new Set(reads.map((r) => r.key));
  const owner = new Map<string, string>();
  let walked = 0;
  for (const e of walkTree(image)) {
    if (++walked > MAX_WALK) break;
    for (const c of e.chunks) {
      const key = `${c.blobIndex}:${c.ciIndex}`;
      if (wanted.has(key) && !owner.has(key)) owner.set(key, e.path);
    }
  }
  reads.sort((a, b) => a.seq - b.seq);
  const out: string[] = [];
  const seen = new Set<string>();
  for (const r of reads) {
    const path = owner.get(r.key);
    if (path === undefined || seen.has(path)) continue;
    seen.add(path);
    out.push(path);
    if (out.length >= limit) break;
  }
  return out;
}

/** What `GET /api/v1/rafsnap/prefetch-list` answers for one instance. */
export interface PrefetchListReport {
  /** True while any of the instance's blobs still records (the list may still grow). */
  recording: boolean;
  /** Absolute in-image paths in first-read order, at most {@link MAX_PREFETCH_PATHS}. */
  files: string[];
}

/**
 * The recorded startup working set of the instance mounted from `bootstrap` (re-read from
 * disk, at most `maxBytes`) over blobs whose records `records` holds. Throws InvalidArgument
 * when the bootstrap can no longer be read or is malformed.
 */
export function instancePrefetchList(
  bootstrap: string,
  maxBytes: number,
  records: ReadonlyMap<string, { recording: boolean; order: readonly { seq: number; ci: number }[] }>,
): PrefetchListReport {
  let file: ReturnType<typeof openRegular>;
  try {
    file = openRegular(bootstrap, "bootstrap", maxBytes);
  } catch (e) {
    throw e instanceof LayerFileError ? invalidArgument(e.message, e) : e;
  }
  let image: RafsImage;
  try {
    image = openBootstrapBytes(readLayerFile(file), bootstrap);
  } finally {
    closeSync(file.fd);
  }
  const orders = new Map([...records].map(([id, r]) => [id, r.order]));
  return { recording: [...records.values()].some((r) => r.recording), files: recordedFiles(image, orders, MAX_PREFETCH_PATHS) };
}
