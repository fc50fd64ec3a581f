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

/** Shortest match the LZ4 block format encodes. */
const MIN_MATCH = 4;
/** The format's end rules: the last 5 bytes are literals; no match starts in the last 12. */
const LAST_LITERALS = 5;
const MF_LIMIT = 12;

/**
 * Compresses `src` into one LZ4 block (the `lz4_block` chunk compressor of nydus): a greedy
 * single-pass matcher over a 64 Ki-entry hash table of 4-byte sequences, offsets up to 65535,
 * honouring the block format's end rules. Never fails; the output may be larger than the
 * input for incompressible data (callers then store the chunk raw).
 */
export function lz4BlockEncode(src: Uint8Array): Uint8Array {
  const n = src.length;
  const out = new Uint8Array(n + Math.ceil(n / 255) + 16);
  const table = new Int32Array(1 << 16).fill(-1);
  const v = new DataView(src.buffer, src.byteOffset, src.byteLength);
  let op = 0;
  let anchor = 0;
  const putLength = (len: number) => {
    let l = len;
    while (l >= 255) {
      out[op++] = 255;
      l -= 255;
    }
    out[op++] = l;
  };
  const emit = (litEnd: number, offset: number, matchLen: number) => {
    const lit = litEnd - anchor;
    const m = matchLen - MIN_MATCH;
    out[op++] = (Math.min(lit, 15) << 4) | (matchLen ? Math.min(m, 15) : 0);
    if (lit >= 15) putLength(lit - 15);
    out.set(src.subarray(anchor, litEnd), op);
    op += lit;
    if (!matchLen) return;
    out[op++] = offset & 0xff;
    out[op++] = offset >>> 8;
    if (m >= 15) putLength(m - 15);
  };
  const limit = n - MF_LIMIT;
  let ip = 0;
  while (ip < limit) {
    const seq = v.getUint32(ip, true);
    const h = Math.imul(seq, 2654435761) >>> 16;
    const ref = table[h] as number;
    table[h] = ip;
    if (ref >= 0 && ip - ref <= 0xffff && v.getUint32(ref, true) === seq) {
      let len = MIN_MATCH;
      while (ip + len < n - LAST_LITERALS && src[ref + len] === src[ip + len]) len++;
      emit(ip, ip - ref, len);
      ip += len;
      anchor = ip;
    } else {
      ip++;
    }
  }
  emit(n, 0, 0);
  return out.slice(0, op);
}
