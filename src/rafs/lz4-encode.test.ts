// lz4_block encoding: round trips through our decoder, and the real lz4 tool decoding our
// blocks (wrapped in an LZ4 frame here).
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { lz4BlockDecode, lz4BlockEncode } from "./lz4.ts";

function noise(n: number): Uint8Array {
  const w = new Uint32Array(Math.ceil(n / 4));
  let x = 99;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
  return new Uint8Array(w.buffer, 0, n);
}

const inputs: [string, Uint8Array][] = [
  ...Array.from({ length: 40 }, (_, n) => [`${n} bytes`, new Uint8Array(n).map((_, i) => i % 3)] as [string, Uint8Array]),
  ["text", new TextEncoder().encode("the quick brown fox jumps over the lazy dog\n".repeat(30000))],
  ["noise", noise(300_000)],
  ["zeros", new Uint8Array(1 << 20)],
  ["long literal runs then matches", Buffer.concat([noise(70_000), noise(70_000), new Uint8Array(5000).fill(7)])],
];

test("every input round-trips through the decoder; repetitive data shrinks", () => {
  for (const [name, data] of inputs) {
    const enc = lz4BlockEncode(data);
    expect({ name, ok: Buffer.from(lz4BlockDecode(enc, data.length)).equals(Buffer.from(data)) }).toEqual({ name, ok: true });
  }
  expect(lz4BlockEncode(inputs[40]?.[1] as Uint8Array).length).toBeLessThan(20_000);
});

test("the lz4 tool decodes our blocks", () => {
  for (const [name, data] of inputs.slice(38)) {
    const block = lz4BlockEncode(data);
    // LZ4 frame: magic, FLG (version 1, independent blocks), BD (4 MiB max), header checksum,
    // one compressed block, end mark.
    const desc = new Uint8Array([0x60, 0x70]);
    const hc = (Number(Bun.hash.xxHash32(desc, 0)) >>> 8) & 0xff;
    const frame = Buffer.alloc(4 + 3 + 4 + block.length + 4);
    frame.writeUInt32LE(0x184d2204, 0);
    frame.set([0x60, 0x70, hc], 4);
    frame.writeUInt32LE(block.length, 7);
    frame.set(block, 11);
    frame.writeUInt32LE(0, 11 + block.length);
    const r = spawnSync("lz4", ["-d", "-c", "-"], { input: frame, maxBuffer: 1 << 24 });
    expect({ name, status: r.status, stderr: r.stderr?.toString() }).toEqual({ name, status: 0, stderr: "" });
    expect({ name, ok: Buffer.from(r.stdout).equals(Buffer.from(data)) }).toEqual({ name, ok: true });
  }
});
