// The worker side of LayerThread (layer-thread.ts): converts layers one after the other.
// It reads the layer (from the registry itself, or from chunks the caller sends), cuts the
// bodies into chunks, hashes and compresses them and writes the blob in order to a ring
// shared with the caller, announced in regions of up to FLUSH bytes. It keeps no tree: each
// entry goes to the caller (in batches), which builds the tree and makes the inline bootstrap.
import { RafsnapError } from "../errdefs/index.ts";
import { type BlobInfo, buildLayerBlob, type EntrySink, storesData } from "../rafs/index.ts";
import { RegistryClient } from "../registry/index.ts";
import { blobOptions, type EntryRecord, type FromWorker, type LayerJob, layerEntries, type RemoteBlob, type ToWorker } from "./layer-build.ts";

declare const self: Worker;

/** Blob bytes written to the ring are announced once this many are pending. */
const FLUSH = 256 << 10;
/** Entries are sent to the caller in batches of this many. */
const ENTRY_BATCH = 256;
/**
 * A full garbage collection after this many blob pieces (chunks) or bytes, and after each
 * layer. Left to itself this thread's heap lets some 60 MB of garbage (decompressed and
 * compressed buffers, per-entry objects) pile up before collecting, on top of the calling
 * thread's; collecting on this cadence keeps the peak RSS of a two-layer conversion about
 * 50 MB lower for about a tenth more CPU (bench/convert.ts).
 */
const GC_PIECES = 600;
const GC_BYTES = 32 << 20;

const post = (m: FromWorker) => self.postMessage(m);

/** What one layer's conversion shares between the message handler and the pipeline. */
interface State {
  input: Uint8Array[];
  inputEnded: boolean;
  ring: Uint8Array;
  /** Ring bytes announced or pending and not yet acknowledged. */
  used: number;
  /** Where the next byte goes. */
  pos: number;
  /** Start and length of the written bytes not yet announced. */
  pendingAt: number;
  pending: number;
  /** The inline bootstrap, once the caller has sent it. */
  boot?: Uint8Array;
}

let state: State | undefined;
/** Whoever waits for a message: the source (the decompressor may read ahead) and the writer. */
let waiters: (() => void)[] = [];
const nextMessage = () => new Promise<void>((r) => waiters.push(r));

/** Announces the written bytes not yet announced (one contiguous region of the ring). */
function announce(s: State): void {
  if (s.pending === 0) return;
  post({ t: "out", off: s.pendingAt, len: s.pending });
  s.pendingAt = s.pos;
  s.pending = 0;
}

/** The source chunks the caller sends, in order; each is acknowledged when taken. */
async function* source(s: State): AsyncGenerator<Uint8Array> {
  for (;;) {
    const c = s.input.shift();
    if (c) {
      post({ t: "pull", n: c.length });
      yield c;
      continue;
    }
    if (s.inputEnded) return;
    announce(s); // the caller may be waiting for them
    await nextMessage();
  }
}

/** Copies `piece` into the ring, waiting for the caller whenever the ring is full. */
async function write(s: State, piece: Uint8Array): Promise<void> {
  const size = s.ring.length;
  for (let o = 0; o < piece.length; ) {
    if (s.used === size) {
      announce(s);
      await nextMessage();
      continue;
    }
    // Free space starts at `pos`; a region never wraps.
    const n = Math.min(size - s.pos, size - s.used, piece.length - o);
    s.ring.set(piece.subarray(o, o + n), s.pos);
    s.pos += n;
    s.used += n;
    s.pending += n;
    o += n;
    if (s.pos === size) {
      announce(s);
      s.pos = s.pendingAt = 0;
    } else if (s.pending >= FLUSH) announce(s);
  }
}

/** Registry clients of this thread, by host and options (their tokens serve the next layers). */
const clients = new Map<string, RegistryClient>();

function remoteSource(r: RemoteBlob): AsyncIterable<Uint8Array> {
  const key = JSON.stringify([r.host, r.registry]);
  let c = clients.get(key);
  if (!c) {
    c = new RegistryClient(r.host, r.registry);
    clients.set(key, c);
  }
  return c.blobStream(r.repo, r.digest);
}

async function run(s: State, job: LayerJob, remote: RemoteBlob | undefined): Promise<void> {
  const counter = { bytes: 0 };
  // An entry is sent once the next one has begun: its chunks are all known then.
  let batch: EntryRecord[] = [];
  const sendEntries = () => {
    if (batch.length > 0) post({ t: "entries", list: batch });
    batch = [];
  };
  const sink: EntrySink = {
    entry(header) {
      if (batch.length >= ENTRY_BATCH) sendEntries();
      const rec: EntryRecord = { header, chunks: storesData(header) ? [] : undefined };
      batch.push(rec);
      return rec.chunks;
    },
  };
  const inlineBootstrap = async (info: BlobInfo) => {
    sendEntries();
    announce(s);
    post({ t: "boot", info });
    while (!s.boot) await nextMessage();
    return s.boot;
  };
  const b = buildLayerBlob(layerEntries(remote ? remoteSource(remote) : source(s), job, counter), sink, { ...(await blobOptions(job)), inlineBootstrap });
  let pieces = 0;
  let bytes = 0;
  for await (const piece of b.blob) {
    await write(s, piece);
    bytes += piece.length;
    if (++pieces >= GC_PIECES || bytes >= GC_BYTES) {
      Bun.gc(true);
      pieces = bytes = 0;
    }
  }
  announce(s);
  sendEntries();
  post({ t: "done", info: b.info, bytes: counter.bytes });
  Bun.gc(true);
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.t === "start") {
    // One layer after the other: the caller starts the next only when this one is done.
    const s: State = { input: [], inputEnded: false, ring: new Uint8Array(m.ring), used: 0, pos: 0, pendingAt: 0, pending: 0 };
    state = s;
    run(s, m.job, m.remote).catch((err) => {
      const kind = err instanceof RafsnapError ? err.kind : "internal";
      post({ t: "error", kind, message: err instanceof Error ? err.message : String(err) });
    });
  } else if (state) {
    if (m.t === "in") state.input.push(m.chunk);
    else if (m.t === "in-end") state.inputEnded = true;
    else if (m.t === "ack") state.used -= m.n;
    else state.boot = m.bytes;
  }
  const w = waiters;
  waiters = [];
  for (const f of w) f();
};
