import { describe, expect, test } from "bun:test";
import { blake3 } from "@noble/hashes/blake3.js";
import { createBlake3 } from "./blake3.ts";
import { blake3SimdModule } from "./blake3-simd.ts";
import { fastChunkHasher } from "./compress.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
/** The specification's test input: byte i is i mod 251. */
const input = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);

describe("blake3 (WebAssembly SIMD)", () => {
  test("the module validates", () => {
    expect(WebAssembly.validate(blake3SimdModule(8))).toBe(true);
  });

  test("the empty input gives the specification's hash", () => {
    expect(hex(createBlake3()(new Uint8Array(0)))).toBe("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  });

  // Every shape of the tree: one chunk, partial last chunks, whole groups of four and
  // leftovers, odd levels, inputs larger than the 256 KiB window.
  const sizes = [
    1,
    63,
    64,
    65,
    1023,
    1024,
    1025,
    2048,
    2049,
    3072,
    3073,
    4096,
    4097,
    5120,
    5121,
    7169,
    8192,
    8193,
    16384,
    31744,
    102400,
    262144,
    262145,
    1 << 20,
    (1 << 20) + 1,
    3 * (1 << 20) + 5000,
  ];
  test("equals @noble/hashes on the specification's inputs", () => {
    const h = createBlake3();
    for (const n of sizes) expect(`${n}:${hex(h(input(n)))}`).toBe(`${n}:${hex(blake3(input(n)))}`);
  });

  test("one instance hashes a large input, then smaller ones, correctly (memory reuse)", () => {
    const h = createBlake3();
    const big = crypto.getRandomValues(new Uint8Array(65536));
    const data = new Uint8Array(5 << 20);
    for (let i = 0; i < data.length; i += big.length) data.set(big, i);
    expect(hex(h(data))).toBe(hex(blake3(data)));
    for (const n of [9000, 300000, 70000]) expect(hex(h(data.subarray(7, 7 + n)))).toBe(hex(blake3(data.subarray(7, 7 + n))));
  });

  test("fastChunkHasher uses it for blake3 and keeps sha256", async () => {
    const f = await fastChunkHasher();
    for (const n of [100, 8191, 8192, 1 << 20]) expect(hex(f("blake3", input(n)))).toBe(hex(blake3(input(n))));
    expect(hex(f("sha256", input(10)))).toBe(new Bun.CryptoHasher("sha256").update(input(10)).digest("hex"));
  });
});
