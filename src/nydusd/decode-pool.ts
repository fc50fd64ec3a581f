/**
 * Worker threads that decode fetched chunks and write them to blob caches (decode-worker.ts),
 * so that decompression and digest checks — most of a cold read's CPU time — run beside the
 * main thread, which goes on fetching and answering FUSE requests.
 */
import { ErrorKind, failedPrecondition, RafsnapError } from "../errdefs/index.ts";
import { type BlobEntry, type ChunkInfo, ownsWholeBuffer } from "../rafs/index.ts";
import { workerUrl } from "../sys/index.ts";

/** What the pool sends a worker (structured clone; `data` is transferred). */
export interface DecodeRequest {
  id: number;
  blob: Pick<BlobEntry, "blobId" | "compressor" | "digester">;
  /** The cache data file's descriptor (owned by the main thread, open while the job runs). */
  fd: number;
  /** Compressed bytes fetched from `base` on; `chunks` lie inside. */
  data: Uint8Array;
  base: number;
  /** The chunks, {@link CHUNK_FIELDS} numbers each (see {@link packChunks}); transferred. */
  chunks: Float64Array;
  /** Expected digest (hex) per chunk, or undefined for no check. */
  digests: (string | undefined)[];
}

/** Numbers per chunk in {@link DecodeRequest.chunks}. */
export const CHUNK_FIELDS = 6;

/** The fields of `chunks` decoding needs, flat (cheap to post: no object graph to clone). */
export function packChunks(chunks: readonly ChunkInfo[]): Float64Array {
  const out = new Float64Array(chunks.length * CHUNK_FIELDS);
  chunks.forEach((c, i) =>
    out.set([c.ciIndex, c.compressedOffset, c.compressedSize, c.uncompressedOffset, c.uncompressedSize, c.compressed ? 1 : 0], i * CHUNK_FIELDS),
  );
  return out;
}

/** Chunk `i` of a packed list, as much of a ChunkInfo as decoding reads. */
export function unpackChunk(packed: Float64Array, i: number): ChunkInfo {
  const at = i * CHUNK_FIELDS;
  const f = (k: number) => packed[at + k] as number;
  return {
    ciIndex: f(0),
    compressedOffset: f(1),
    compressedSize: f(2),
    uncompressedOffset: f(3),
    uncompressedSize: f(4),
    compressed: f(5) === 1,
    flags: 0,
    data: 0n,
  };
}

/** A worker's answer: the ci indexes written, in order, and the error that stopped it. */
export interface DecodeReply {
  id: number;
  written: number[];
  error?: string;
}

const WORKER = workerUrl(import.meta.url, "nydusd", "decode-worker.ts");

interface Pending {
  resolve: (written: number[]) => void;
  reject: (e: Error) => void;
}

/** The error of a job that stopped part way: which chunks were written before it. */
export class DecodeError extends RafsnapError {
  constructor(
    message: string,
    readonly written: number[],
  ) {
    // The kind decodeChunk gives the same failure on the main thread.
    super(ErrorKind.InvalidArgument, message);
  }
}

/**
 * `threads` decode workers, started on first use, each taking the next job when it has the
 * fewest outstanding. Idle workers do not keep the process alive. {@link close} stops them.
 */
export class DecodePool {
  private readonly workers: { w: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly threads: number) {}

  /** Starts workers until there are `threads`. */
  private start(): void {
    while (this.workers.length < this.threads) {
      const w = new Worker(WORKER);
      const slot = { w, busy: 0 };
      w.onmessage = (e: MessageEvent<DecodeReply>) => {
        const r = e.data;
        slot.busy--;
        if (slot.busy === 0) w.unref();
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        if (r.error === undefined) p.resolve(r.written);
        else p.reject(new DecodeError(r.error, r.written));
      };
      w.onerror = (e) => {
        // A worker that fails is replaced on the next job. Which pending jobs were its is not
        // tracked, so all fail: their reads get EIO rather than hang, and the next read of
        // those chunks fetches them again.
        w.terminate();
        const at = this.workers.indexOf(slot);
        if (at >= 0) this.workers.splice(at, 1);
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(new Error(`decode worker failed: ${e.message}`));
        }
      };
      w.unref();
      this.workers.push(slot);
    }
  }

  /**
   * Decodes `chunks` (inside `data`, fetched from compressed offset `base`) and writes them to
   * `fd` at their uncompressed offsets; resolves with the ci indexes written. Rejects with
   * {@link DecodeError} (its `written` are in the file) when a chunk fails to decompress or
   * verify, naming the blob and chunk. `data` may be detached afterwards.
   */
  decode(job: Omit<DecodeRequest, "id" | "chunks"> & { chunks: readonly ChunkInfo[] }): Promise<number[]> {
    if (this.closed) return Promise.reject(failedPrecondition("decode pool is closed"));
    if (this.workers.length < this.threads) this.start();
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    const data = ownsWholeBuffer(job.data) ? job.data : job.data.slice();
    const chunks = packChunks(job.chunks);
    const req: DecodeRequest = {
      id,
      blob: { blobId: job.blob.blobId, compressor: job.blob.compressor, digester: job.blob.digester },
      fd: job.fd,
      data,
      base: job.base,
      chunks,
      digests: job.digests,
    };
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (slot.busy++ === 0) slot.w.ref();
      slot.w.postMessage(req, [data.buffer as ArrayBuffer, chunks.buffer as ArrayBuffer]);
    });
  }

  /** Stops the workers; jobs still running are failed. */
  close(): void {
    this.closed = true;
    for (const s of this.workers) s.w.terminate();
    this.workers.length = 0;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new Error("decode pool closed"));
    }
  }
}
