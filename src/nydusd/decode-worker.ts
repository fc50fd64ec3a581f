// Chunk decoder, run as a Worker by DecodePool (decode-pool.ts): turns the compressed bytes
// of a fetched range into uncompressed chunks (decompress, verify the digest when one is
// expected) and writes each one into the blob's cache data file at its uncompressed offset,
// through the descriptor of the chunk fill that claimed them (src/cache/blob-cache.ts: open
// until that fill ends; descriptors are process-wide). It answers which chunks it wrote; the
// main thread has the fill publish them. A chunk that fails stops
// the job: the ones before it are reported written, the error names the blob and chunk.
import { writeSync } from "node:fs";
import { decodeChunk } from "../rafs/blob-data.ts";
import { type ChunkHasher, fastChunkHasher } from "../rafs/compress.ts";
import { CHUNK_FIELDS, type DecodeReply, type DecodeRequest, unpackChunk } from "./decode-pool.ts";

declare const self: Worker;

let hasher: Promise<ChunkHasher> | undefined;

self.onmessage = async (e: MessageEvent<DecodeRequest>) => {
  const job = e.data;
  // The hasher (a few MiB of WebAssembly) only once a job asks for a digest check.
  let hash: ChunkHasher | undefined;
  if (job.digests.some((d) => d !== undefined)) {
    hasher ??= fastChunkHasher();
    hash = await hasher;
  }
  const written: number[] = [];
  let error: string | undefined;
  try {
    for (let i = 0; i * CHUNK_FIELDS < job.chunks.length; i++) {
      const c = unpackChunk(job.chunks, i);
      const from = c.compressedOffset - job.base;
      const bytes = decodeChunk(job.blob, c, job.data.subarray(from, from + c.compressedSize), { expectedDigest: job.digests[i], hasher: hash });
      let done = 0;
      while (done < bytes.length) {
        const n = writeSync(job.fd, bytes, done, bytes.length - done, c.uncompressedOffset + done);
        if (!(n > 0)) throw new Error(`blob ${job.blob.blobId} chunk ${c.ciIndex}: writing at ${c.uncompressedOffset + done} wrote ${n} bytes`);
        done += n;
      }
      written.push(c.ciIndex);
    }
  } catch (err) {
    error = (err as Error).message;
  }
  const reply: DecodeReply = { id: job.id, written, error };
  self.postMessage(reply);
};
