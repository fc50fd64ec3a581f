// lz4_block decoding: hand-built blocks for each branch of the format, and (when the lz4 CLI
// is installed) real blocks taken out of lz4 frames.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { decompress, lz4BlockDecode } from "./index.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const hasLz4 = spawnSync("lz4", ["--version"]).status === 0;

describe("lz4BlockDecode", () => {
  test("literals only", () => {
    expect(lz4BlockDecode(new Uint8Array([0x50, ...enc("hello")]), 5)).toEqual(enc("hello"));
  });

  test("overlapping match repeats a pattern (RLE)", () => {
    // 1 literal 'a', match offset 1 length 4+5=9, then final 0-literal sequence.
    const block = new Uint8Array([0x15, 0x61, 0x01, 0x00, 0x00]);
    expect(lz4BlockDecode(block, 10)).toEqual(enc("a".repeat(10)));
  });

  test("extended literal and match lengths", () => {
    const lit = "x".repeat(15 + 255 + 3); // 273 literals: 15 + 255 + 3
    const block = new Uint8Array([0xff, 255, 3, ...enc(lit), 0x01, 0x00, 255, 10, 0x00]);
    // match length = 15 + 4 + 255 + 10 = 284
    const out = lz4BlockDecode(block, 273 + 284);
    expect(out).toEqual(enc("x".repeat(557)));
  });

  test("output size is enforced", () => {
    expect(() => lz4BlockDecode(new Uint8Array([0x50, ...enc("hello")]), 4)).toThrow(/past the output size 4/);
    expect(() => lz4BlockDecode(new Uint8Array([0x50, ...enc("hello")]), 6)).toThrow(/produced 5 bytes, expected 6/);
    expect(() => decompress("lz4_block", new Uint8Array([0x50, ...enc("hel")]), 5, "chunk 3")).toThrow(/chunk 3: corrupt lz4 block/);
  });

  test("blocks produced by the lz4 tool decode to the input", () => {
    expect(hasLz4).toBe(true); // scripts/deps.sh installs the lz4 package
    let seed = 7;
    const input = new Uint8Array(300_000);
    for (let i = 0; i < input.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      input[i] = i % 1000 < 600 ? (seed >>> 24) & 0x0f : 0x41 + (i % 7);
    }
    // -B7: 4 MiB blocks so the input is one independent block; frame = magic, FLG, BD, HC, blocks.
    const r = spawnSync("lz4", ["-B7", "-BI", "--no-frame-crc", "-c", "-"], { input });
    expect(r.status).toBe(0);
    const frame = new Uint8Array(r.stdout);
    const dv = new DataView(frame.buffer, frame.byteOffset);
    expect(dv.getUint32(0, true)).toBe(0x184d2204);
    const flg = frame[4] as number;
    let pos = 7 + (flg & 0x08 ? 8 : 0) + (flg & 0x01 ? 4 : 0);
    const word = dv.getUint32(pos, true);
    expect(word & 0x80000000).toBe(0); // compressed block
    pos += 4;
    const block = frame.subarray(pos, pos + word);
    expect(decompress("lz4_block", block, input.length, "lz4 cli block")).toEqual(input);
  });
});
