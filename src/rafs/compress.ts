/**
 * Decompression and digests for blob data: `none`, `zstd`, `lz4_block`, `gzip`; blake3 and
 * sha256. Every decoder is bounded by the expected uncompressed size, so a forged stream
 * cannot make it allocate more.
 */
import { blake3 } from "@noble/hashes/blake3.js";
import { gunzipSync, zstdDecompressSync } from "node:zlib";
import { invalidArgument } from "../errdefs/index.ts";
import type { Compressor, Digester } from "./blob-table.ts";
import { createBlake3 } from "./blake3.ts";
import { lz4BlockDecode } from "./lz4.ts";

/**
 * Turns `input` into exactly `size` uncompressed bytes with `algo`.
 *
 * zstd and gzip go through `node:zlib` with `maxOutputLength = size` (Bun's own
 * `Bun.zstdDecompressSync` has no output bound); lz4_block through {@link lz4BlockDecode}.
 * Throws InvalidArgument naming `what` when the stream is corrupt, or produces more or fewer
 * than `size` bytes; for `none`, when `input.length ≠ size`.
 */
export function decompress(algo: Compressor, input: Uint8Array, size: number, what: string): Uint8Array {
  let out: Uint8Array;
  try {
    switch (algo) {
      case "none":
        out = input;
        break;
      case "lz4_block":
        return lz4BlockDecode(input, size, what);
      case "zstd":
        out = zstdDecompressSync(input, { maxOutputLength: Math.max(size, 1) });
        break;
      case "gzip":
        out = gunzipSync(input, { maxOutputLength: Math.max(size, 1) });
        break;
    }
  } catch (e) {
    throw invalidArgument(`rafs: ${what}: ${algo} data does not decompress to ${size} bytes: ${(e as Error).message}`, e);
  }
  if (out.length !== size) throw invalidArgument(`rafs: ${what}: ${algo} data gave ${out.length} bytes, expected ${size}`);
  return out;
}

/**
 * Decompresses a zstd or gzip stream whose size is not recorded, allowing at most `maxSize`
 * output bytes. Throws InvalidArgument naming `what` when the stream is corrupt or larger.
 */
export function decompressAtMost(algo: "zstd" | "gzip", input: Uint8Array, maxSize: number, what: string): Uint8Array {
  try {
    return algo === "zstd" ? zstdDecompressSync(input, { maxOutputLength: maxSize }) : gunzipSync(input, { maxOutputLength: maxSize });
  } catch (e) {
    throw invalidArgument(`rafs: ${what}: ${algo} data does not decompress within ${maxSize} bytes: ${(e as Error).message}`, e);
  }
}

/** Digest of `data` with `algo` (32 bytes). */
export function digest(algo: Digester, data: Uint8Array): Uint8Array {
  if (algo === "blake3") return blake3(data);
  return new Bun.CryptoHasher("sha256").update(data).digest() as Uint8Array;
}

/** A chunk digest function: what {@link digest} does, possibly faster. */
export type ChunkHasher = (algo: Digester, data: Uint8Array) => Uint8Array;

/** Below this many bytes a scalar blake3 beats the SIMD one's set-up (measured, docs/rafs.md). */
const SIMD_MIN = 8192;

/**
 * A chunk hasher for hot paths (building blobs, verifying fetched chunks): blake3 of inputs
 * of 8 KiB and more runs four 1 KiB chunks at a time in WebAssembly SIMD ({@link createBlake3},
 * about 2× hash-wasm on these machines), smaller ones in hash-wasm's scalar WebAssembly.
 * One instance per thread (it keeps hashing state), so concurrent builds each make their
 * own. Falls back to hash-wasm alone without WebAssembly SIMD, and to {@link digest}
 * without WebAssembly.
 */
export async function fastChunkHasher(): Promise<ChunkHasher> {
  let small: (data: Uint8Array) => Uint8Array;
  try {
    const { createBLAKE3 } = await import("hash-wasm/dist/blake3.umd.min.js");
    const h = await createBLAKE3();
    small = (data) => {
      h.init();
      h.update(data);
      return h.digest("binary");
    };
  } catch {
    return digest;
  }
  let large = small;
  try {
    large = createBlake3();
  } catch {
    // no WebAssembly SIMD: hash-wasm for everything
  }
  return (algo, data) => {
    if (algo !== "blake3") return digest(algo, data);
    return data.length >= SIMD_MIN ? large(data) : small(data);
  };
}

/** sha256 of the concatenation of `parts`, as lowercase hex. */
export function sha256Hex(...parts: Uint8Array[]): string {
  const h = new Bun.CryptoHasher("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}
