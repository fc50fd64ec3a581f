// lz4_block encoding: round trips through our decoder, and the real lz4 tool decoding our
// blocks (wrapped in an LZ4 frame here).
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { noise } from "../../test/harness/oci-image.ts";
import { lz4BlockDecode, lz4BlockEncode } from "./lz4.ts";

const inputs: [string, Uint8Array][] = [
  ...Array.from({ length: 40 }, (_, n) => [`${n} bytes`, new Uint8Array(n).map((_, i) => i % 3)] as [string, Uint8Array]),
  ["text", new TextEncoder().encode("the quick brown fox jumps over the lazy dog\n".repeat(30000))],
  ["noise", noise(300_000, 99)],
  ["zeros", new Uint8Array(1 << 20)],
  ["long literal runs then matches", Buffer.concat([noise(70_000, 99), noise(70_000, 99), new Uint8Array(5000).fill(7)])],
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
