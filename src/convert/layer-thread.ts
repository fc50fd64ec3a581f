/**
 * The calling thread's side of converting layers on a worker thread (layer-worker.ts). The
 * worker reads the layer (from its registry itself, or from chunks handed over), cuts it into
 * chunks, hashes and compresses them and writes the blob to a ring shared with this thread;
 * this thread uploads what the ring holds and builds the layer tree from the entries the
 * worker sends, and makes the inline bootstrap the worker asks for. The tree never has to be
 * copied between threads, and the worker's heap stays small.
 */
import { RafsnapError } from "../errdefs/index.ts";
import { type BlobInfo, LayerTreeBuilder, ownsWholeBuffer, writeBootstrap } from "../rafs/index.ts";
import type { EntryRecord, FromWorker, LayerConversion, LayerDone, LayerJob, RemoteBlob, ToWorker } from "./layer-build.ts";
import { workerUrl } from "../sys/index.ts";

/** Source bytes the calling thread may have handed over and the worker not yet consumed. */
export const IN_WINDOW = 4 << 20;
/** Size of the shared ring the worker writes blob bytes to (what it may be ahead of the caller). */
export const OUT_RING = 2 << 20;

const WORKER = workerUrl(import.meta.url, "convert", "layer-worker.ts");

/** The layer tree, built on this thread from the entries the worker sends. */
class TreeSide {
  private readonly tree = new LayerTreeBuilder();
  /** The blob info every chunk reference points to; filled from the worker's. */
  readonly info = {} as BlobInfo;
  private bootstrap: Uint8Array | undefined;

  /** Adds entries in order; throws what `LayerTreeBuilder.add` throws. */
  add(list: EntryRecord[]): void {
    for (const { header, chunks } of list) {
      const inode = this.tree.add(header);
      if ((inode === undefined) !== (chunks === undefined))
        throw new RafsnapError("internal", `convert: /${header.path}: the worker and the tree disagree on whether its data is stored`);
      if (!inode || !chunks) continue;
      for (const c of chunks) c.blob = this.info;
      inode.chunks.push(...chunks);
    }
  }

  /** The layer bootstrap for the blob described by `info` (what `buildLayer` would write). */
  boot(info: BlobInfo): Uint8Array {
    Object.assign(this.info, info);
    this.bootstrap = writeBootstrap(this.tree.root, { chunkSize: info.chunkSize, compressor: info.compressor, digester: info.digester, merged: false });
    return this.bootstrap;
  }

  done(info: BlobInfo, bytes: number): LayerDone {
    Object.assign(this.info, info);
    const bootstrap = this.bootstrap ?? this.boot(info);
    return { result: { blob: this.info, tree: this.tree.root, bootstrap }, bytes };
  }
}

/**
 * A worker thread that converts layers one after the other ({@link LayerThread.convert}),
 * so that the thread and its compiled code are made once per concurrent slot, not per layer.
 * Call {@link LayerThread.close} when done.
 */
export class LayerThread {
  private worker: Worker | undefined;
  private readonly ring: SharedArrayBuffer;
  private busy = false;
  /** Fails the conversion in progress. */
  private abort: ((e: Error) => void) | undefined;

  /** `ringSize`: bytes of the shared output ring (default {@link OUT_RING}; small ones for tests). */
  constructor(opts: { ringSize?: number } = {}) {
    this.ring = new SharedArrayBuffer(opts.ringSize ?? OUT_RING);
  }

  /**
   * Converts one layer with this thread, byte for byte as `convertLayer` does. The worker
   * reads `src` itself when it is a {@link RemoteBlob} (a `RegistryClient` of its own, kept
   * for the next layers, so tokens are fetched once per thread); else this thread reads it
   * and hands its chunks over, at most {@link IN_WINDOW} bytes ahead of the worker. The blob
   * pieces are views of the shared ring, each valid until the next is requested; the worker
   * waits when the ring is full, so memory stays bounded whichever side is slower.
   *
   * Errors of the conversion come back with their kind and message; an error of a `src`
   * read here is rethrown as is. A conversion that fails or is abandoned ends the worker
   * (the next one starts a new worker). One conversion at a time: FailedPrecondition otherwise.
   */
  convert(src: AsyncIterable<Uint8Array> | RemoteBlob, job: LayerJob): LayerConversion {
    if (this.busy) throw new RafsnapError("failed-precondition", "convert: a layer thread converts one layer at a time");
    this.busy = true;
    this.worker ??= new Worker(WORKER);
    const w = this.worker;
    const ring = new Uint8Array(this.ring);
    const tree = new TreeSide();
    const out: { off: number; len: number }[] = [];
    let done: LayerDone | undefined;
    let failure: Error | undefined;
    let ended = false;
    let inFlight = 0;
    let wakeOut: (() => void) | undefined;
    let wakeIn: (() => void) | undefined;
    const wake = () => {
      wakeOut?.();
      wakeIn?.();
      wakeOut = wakeIn = undefined;
    };
    const end = (keepWorker: boolean) => {
      if (ended) return;
      ended = true;
      this.busy = false;
      this.abort = undefined;
      w.onmessage = null;
      w.onerror = null;
      if (!keepWorker) {
        w.terminate();
        if (this.worker === w) this.worker = undefined;
      }
      wake();
    };
    const fail = (e: Error) => {
      failure ??= e;
      end(false);
    };
    this.abort = fail;
    const post = (m: ToWorker, transfer: ArrayBuffer[] = []) => {
      if (!ended) w.postMessage(m, transfer);
    };
    w.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      try {
        if (m.t === "pull") inFlight -= m.n;
        else if (m.t === "out") out.push(m);
        else if (m.t === "entries") tree.add(m.list);
        else if (m.t === "boot") {
          post({ t: "boot", bytes: tree.boot(m.info) });
          Bun.gc(true); // the bootstrap writer's garbage; see GC_PIECES in layer-worker.ts
        } else if (m.t === "done") {
          done = tree.done(m.info, m.bytes);
          end(true);
          Bun.gc(true);
        } else fail(new RafsnapError(m.kind, m.message));
      } catch (err) {
        fail(err instanceof Error ? err : new RafsnapError("internal", String(err)));
      }
      wake();
    };
    w.onerror = (e) => fail(new RafsnapError("internal", `${job.what}: layer worker failed: ${e.message}`));
    const remote = Symbol.asyncIterator in src ? undefined : src;
    post({ t: "start", job, ring: this.ring, remote });

    const pump = async (chunks: AsyncIterable<Uint8Array>) => {
      for await (const c of chunks) {
        while (inFlight >= IN_WINDOW && !ended) await new Promise<void>((r) => (wakeIn = r));
        if (ended) return;
        const chunk = ownsWholeBuffer(c) ? c : c.slice();
        inFlight += chunk.length;
        post({ t: "in", chunk }, [chunk.buffer as ArrayBuffer]);
      }
      post({ t: "in-end" });
    };
    async function* blob(): AsyncGenerator<Uint8Array> {
      if (!remote) pump(src as AsyncIterable<Uint8Array>).catch((e: Error) => fail(e));
      try {
        for (;;) {
          const c = out.shift();
          if (c) {
            yield ring.subarray(c.off, c.off + c.len);
            // The consumer asks for more: it is done with this piece.
            post({ t: "ack", n: c.len });
            continue;
          }
          if (failure) throw failure;
          if (done) return;
          await new Promise<void>((r) => (wakeOut = r));
        }
      } finally {
        if (!done) fail(new RafsnapError("canceled", `${job.what}: conversion abandoned`));
      }
    }
    return {
      blob: blob(),
      async finish() {
        if (failure) throw failure;
        if (!done || out.length > 0) throw new RafsnapError("failed-precondition", "convert: finish() called before the blob stream was consumed");
        return done;
      },
    };
  }

  /** Ends the worker thread (a conversion in progress fails). */
  close(): void {
    this.abort?.(new RafsnapError("canceled", "convert: layer thread closed"));
    this.worker?.terminate();
    this.worker = undefined;
  }
}

/** {@link LayerThread.convert} on a thread of its own, closed when the conversion ends. */
export function convertLayerInWorker(src: AsyncIterable<Uint8Array> | RemoteBlob, job: LayerJob): LayerConversion {
  const t = new LayerThread();
  const c = t.convert(src, job);
  return {
    blob: (async function* () {
      try {
        yield* c.blob;
      } finally {
        t.close();
      }
    })(),
    finish: () => c.finish(),
  };
}
