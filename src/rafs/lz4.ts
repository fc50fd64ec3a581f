/**
 * LZ4 block-format decoder (the format nydus calls `lz4_block`: one raw LZ4 block, no frame,
 * no size prefix). Written here because the format is ~40 lines and the npm decoders are either
 * unmaintained (lz4js), native (lz4-napi, not bundleable into one executable) or stream-only.
 */
import { invalidArgument } from "../errdefs/index.ts";

/**
 * Decodes one LZ4 block into exactly `size` bytes.
 *
 * Throws InvalidArgument (naming `what`) when a literal run or match reads past the input,
 * writes past `size`, refers before the start of the output (offset 0 or too far back), or
 * when the block ends before producing `size` bytes.
 */
export function lz4BlockDecode(input: Uint8Array, size: number, what = "lz4 block"): Uint8Array {
  const out = new Uint8Array(size);
  let ip = 0;
  let op = 0;
  const fail = (problem: string): never => {
    throw invalidArgument(`rafs: ${what}: corrupt lz4 block at input byte ${ip}: ${problem}`);
  };
  while (ip < input.length) {
    const token = input[ip++] as number;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= input.length) fail("truncated literal length");
        b = input[ip++] as number;
        lit += b;
      } while (b === 255);
    }
    if (ip + lit > input.length) fail(`literal run of ${lit} bytes past the input`);
    if (op + lit > size) fail(`literal run of ${lit} bytes past the output size ${size}`);
    out.set(input.subarray(ip, ip + lit), op);
    ip += lit;
    op += lit;
    if (ip === input.length) break; // the last sequence has literals only
    if (ip + 2 > input.length) fail("truncated match offset");
    const offset = (input[ip] as number) | ((input[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > op) fail(`match offset ${offset} before the start of the output`);
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (ip >= input.length) fail("truncated match length");
        b = input[ip++] as number;
        len += b;
      } while (b === 255);
    }
    if (op + len > size) fail(`match of ${len} bytes past the output size ${size}`);
    let from = op - offset;
    if (offset >= len) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else {
      // Overlapping match: copy byte by byte so the repeated pattern propagates.
      for (let i = 0; i < len; i++) out[op++] = out[from++] as number;
    }
  }
  if (op !== size) throw invalidArgument(`rafs: ${what}: lz4 block produced ${op} bytes, expected ${size}`);
  return out;
}
