import { invalidArgument } from "../errdefs/index.ts";

/** How an OCI layer blob is compressed. */
export type LayerCompression = "gzip" | "zstd" | "none";

/** The compression of a layer from its first bytes (gzip 1f 8b, zstd 28 b5 2f fd, else none). */
export function detectCompression(head: Uint8Array): LayerCompression {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}

/** What to check while a layer streams through {@link decompressLayer}. */
export interface LayerCheck {
  /** Names the layer in errors (e.g. `layer sha256:… of registry/app:1`). */
  what: string;
  /** Expected sha256 digest of the blob as stored (compressed). */
  digest?: string;
  /** Expected sha256 digest of the uncompressed tar (the config's diff_id). */
  diffId?: string;
}

const sha256 = () => new Bun.CryptoHasher("sha256");

async function* withFirst(first: Uint8Array, rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield first;
  for (;;) {
    const n = await rest.next();
    if (n.done) return;
    yield n.value;
  }
}

/**
 * Streams the uncompressed tar of a layer blob (gzip, zstd or uncompressed, detected from
 * its first bytes), hashing the stored and the uncompressed bytes on the way. When the
 * stream ends, a digest or diff_id that does not match is InvalidArgument naming the layer
 * and both digests; a truncated or corrupt compressed stream is InvalidArgument too. Memory
 * stays bounded: nothing is buffered beyond the decompressor's window.
 */
export async function* decompressLayer(src: AsyncIterable<Uint8Array>, check: LayerCheck): AsyncGenerator<Uint8Array> {
  const it = src[Symbol.asyncIterator]();
  let first = await it.next();
  while (!first.done && first.value.length === 0) first = await it.next();
  if (first.done) throw invalidArgument(`${check.what}: empty blob`);
  const stored = sha256();
  const plain = sha256();
  const compression = detectCompression(first.value);
  const raw = (async function* () {
    for await (const c of withFirst(first.value, it)) {
      stored.update(c);
      yield c;
    }
  })();
  let out: AsyncIterable<Uint8Array> = raw;
  if (compression !== "none") {
    const ds = new DecompressionStream(compression);
    const source = new ReadableStream<Uint8Array>({
      async pull(c) {
        const n = await raw.next();
        if (n.done) c.close();
        else c.enqueue(n.value);
      },
    });
    out = source.pipeThrough(ds as unknown as ReadableWritablePair<Uint8Array, Uint8Array>);
  }
  try {
    for await (const c of out) {
      plain.update(c);
      yield c;
    }
  } catch (e) {
    throw invalidArgument(`${check.what}: ${compression} stream is corrupt or truncated: ${(e as Error).message}`, e);
  }
  const gotDigest = `sha256:${stored.digest("hex")}`;
  if (check.digest && check.digest !== gotDigest) {
    throw invalidArgument(`${check.what}: blob content has digest ${gotDigest}, the manifest says ${check.digest}`);
  }
  const gotDiffId = `sha256:${plain.digest("hex")}`;
  if (check.diffId && check.diffId !== gotDiffId) {
    throw invalidArgument(`${check.what}: uncompressed content has digest ${gotDiffId}, the config's diff_id is ${check.diffId}`);
  }
}
