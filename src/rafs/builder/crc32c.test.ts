import { expect, test } from "bun:test";
import { crc32c } from "./blob-writer.ts";

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
