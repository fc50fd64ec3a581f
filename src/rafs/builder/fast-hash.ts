/**
 * WebAssembly checksums for the builder's hot path (hash-wasm, bundled into the single
 * executable): CRC-32C about 1.8× the JS slicing-by-8 of {@link crc32c}. Each call makes
 * its own instance (instances keep state), so concurrent builds never share one.
 */
import { crc32c } from "./blob-writer.ts";

/**
 * A CRC-32C (Castagnoli) function that gives exactly what {@link crc32c} gives, computed in
 * WebAssembly. Falls back to {@link crc32c} when WebAssembly is unavailable.
 */
export async function fastCrc32c(): Promise<(data: Uint8Array) => number> {
  try {
    const { createCRC32 } = await import("hash-wasm/dist/crc32.umd.min.js");
    const h = await createCRC32(0x82f63b78);
    return (data) => {
      h.init();
      h.update(data);
      const b = h.digest("binary");
      return (((b[0] as number) << 24) | ((b[1] as number) << 16) | ((b[2] as number) << 8) | (b[3] as number)) >>> 0;
    };
  } catch {
    return crc32c;
  }
}
