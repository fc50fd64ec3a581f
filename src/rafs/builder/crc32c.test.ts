import { expect, test } from "bun:test";
import { crc32c } from "./blob-writer.ts";
import { fastCrc32c } from "./fast-hash.ts";

/** The textbook bit-at-a-time CRC-32C, to check the sliced one against. */
function slow(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test("CRC-32C: the standard check value and every length around the 8-byte step", () => {
  expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  for (let n = 0; n < 40; n++) {
    const d = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
    expect(crc32c(d)).toBe(slow(d));
  }
});

test("CRC-32C in WebAssembly gives what the JS one gives (check value, short and chunk-sized inputs)", async () => {
  const fast = await fastCrc32c();
  expect(fast(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  expect(fast(new Uint8Array(0))).toBe(crc32c(new Uint8Array(0)));
  for (let n = 1; n < 40; n++) {
    const d = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
    expect(fast(d)).toBe(slow(d));
  }
  let x = 1;
  for (const n of [4095, 4096, 8200, 1 << 20]) {
    const d = new Uint8Array(n).map(() => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x >>> 24;
    });
    expect(fast(d)).toBe(crc32c(d));
    expect(fast(d.subarray(3, n - 1))).toBe(crc32c(d.subarray(3, n - 1)));
  }
});
