// The builder's zstd frames are node:zlib's streaming ones, which Bun's one-shot compressor
// does not always reproduce (mixed data splits into blocks differently): blob bytes and ids
// must stay what they were, so this pins the choice.
import { expect, test } from "bun:test";
import { constants, zstdCompressSync } from "node:zlib";
import { compress } from "./blob-writer.ts";

function xorshift(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

test("zstd chunks: same frames as node:zlib at level 3 without checksum, for text, zeros, random and mixed data", () => {
  const text = new TextEncoder().encode("layer 1: the quick brown fox jumps over the lazy dog 0123456789\n".repeat(20000));
  const inputs: Uint8Array[] = [];
  for (const n of [1, 17, 4096, 8200, 65536, 300_001, 1 << 20]) {
    inputs.push(text.subarray(0, n), new Uint8Array(n), xorshift(n, n));
    const mixed = xorshift(n, 7);
    mixed.set(text.subarray(0, n >> 1));
    inputs.push(mixed);
  }
  let compressed = 0;
  for (const raw of inputs) {
    const ours = compress("zstd", raw);
    const ref = zstdCompressSync(raw, { params: { [constants.ZSTD_c_compressionLevel]: 3, [constants.ZSTD_c_checksumFlag]: 0 } });
    if (ref.length < raw.length) {
      compressed++;
      expect(ours && Buffer.from(ours).equals(ref)).toBe(true);
    } else expect(ours).toBeUndefined();
  }
  expect(compressed).toBeGreaterThan(10);
});

test("why not Bun.zstdCompressSync: it differs on half text, half random data (if this fails, it may now be a drop-in)", () => {
  const raw = xorshift(1 << 20, 7);
  raw.set(new TextEncoder().encode("layer 1: the quick brown fox jumps over the lazy dog 0123456789\n".repeat(9000)).subarray(0, 1 << 19));
  const ours = compress("zstd", raw) as Uint8Array;
  expect(Buffer.from(Bun.zstdCompressSync(raw, { level: 3 })).equals(Buffer.from(ours))).toBe(false);
});
