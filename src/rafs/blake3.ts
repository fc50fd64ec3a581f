/**
 * BLAKE3 (32-byte hashes, unkeyed) for the data plane's and the builder's hot paths: whole
 * chunks four at a time in WebAssembly SIMD ({@link blake3SimdModule}), the odd ones and the
 * tree's root in plain JS. Same results as any BLAKE3 (tests compare with @noble/hashes);
 * several times faster than a scalar WebAssembly build on these machines — see docs/rafs.md.
 */
import { blake3SimdModule, CHUNK_END, CHUNK_START, IV, MSG_PERMUTATION, PARENT, ROOT, SCRATCH } from "./blake3-simd.ts";

const CHUNK = 1024;
/** Input bytes copied into the module per call: bounds its memory whatever the input size. */
const WINDOW = 256 * CHUNK;

/** The message word order of each of the 7 rounds (the permutation applied r times). */
const SCHEDULE: number[][] = [];
for (let r = 0, s = [...Array(16).keys()]; r < 7; r++, s = MSG_PERMUTATION.map((p) => s[p] as number)) SCHEDULE.push(s);

/** One BLAKE3 compression in plain JS; writes the chaining value (8 words) to `out`. */
function compress(cv: Uint32Array, m: Uint32Array, counter: number, blockLen: number, flags: number, out: Uint32Array, v = new Uint32Array(16)): void {
  v.set(cv);
  v[8] = IV[0] as number;
  v[9] = IV[1] as number;
  v[10] = IV[2] as number;
  v[11] = IV[3] as number;
  v[12] = counter >>> 0;
  v[13] = Math.floor(counter / 2 ** 32) >>> 0;
  v[14] = blockLen;
  v[15] = flags;
  const g = (a: number, b: number, c: number, d: number, x: number, y: number) => {
    let va = v[a] as number;
    let vb = v[b] as number;
    let vc = v[c] as number;
    let vd = v[d] as number;
    va = (va + vb + x) | 0;
    vd ^= va;
    vd = (vd >>> 16) | (vd << 16);
    vc = (vc + vd) | 0;
    vb ^= vc;
    vb = (vb >>> 12) | (vb << 20);
    va = (va + vb + y) | 0;
    vd ^= va;
    vd = (vd >>> 8) | (vd << 24);
    vc = (vc + vd) | 0;
    vb ^= vc;
    vb = (vb >>> 7) | (vb << 25);
    v[a] = va;
    v[b] = vb;
    v[c] = vc;
    v[d] = vd;
  };
  for (const s of SCHEDULE) {
    g(0, 4, 8, 12, m[s[0] as number] as number, m[s[1] as number] as number);
    g(1, 5, 9, 13, m[s[2] as number] as number, m[s[3] as number] as number);
    g(2, 6, 10, 14, m[s[4] as number] as number, m[s[5] as number] as number);
    g(3, 7, 11, 15, m[s[6] as number] as number, m[s[7] as number] as number);
    g(0, 5, 10, 15, m[s[8] as number] as number, m[s[9] as number] as number);
    g(1, 6, 11, 12, m[s[10] as number] as number, m[s[11] as number] as number);
    g(2, 7, 8, 13, m[s[12] as number] as number, m[s[13] as number] as number);
    g(3, 4, 9, 14, m[s[14] as number] as number, m[s[15] as number] as number);
  }
  for (let i = 0; i < 8; i++) out[i] = (v[i] as number) ^ (v[i + 8] as number);
}

/** Little-endian words of up to 64 bytes of `data` at `off` (zero padded). */
function blockWords(data: Uint8Array, off: number, len: number, m: Uint32Array): void {
  m.fill(0);
  for (let i = 0; i < len; i++) m[i >> 2] = (m[i >> 2] as number) | ((data[off + i] as number) << ((i & 3) * 8));
}

/** Chaining value (or, with `root`, the hash) of one chunk of 0…1024 bytes, in JS. */
function chunkCv(data: Uint8Array, off: number, len: number, counter: number, root: boolean, out: Uint32Array): void {
  const cv = Uint32Array.from(IV);
  const m = new Uint32Array(16);
  const blocks = Math.max(1, Math.ceil(len / 64));
  for (let b = 0; b < blocks; b++) {
    const last = b === blocks - 1;
    const n = last ? len - 64 * b : 64;
    blockWords(data, off + 64 * b, n, m);
    const flags = (b === 0 ? CHUNK_START : 0) | (last ? CHUNK_END : 0) | (last && root ? ROOT : 0);
    compress(cv, m, counter, n, flags, cv);
  }
  out.set(cv);
}

const toBytes = (w: Uint32Array) => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = ((w[i >> 2] as number) >>> ((i & 3) * 8)) & 0xff;
  return out;
};

/** A BLAKE3 hash function: 32-byte digest of `data`. */
export type Blake3 = (data: Uint8Array) => Uint8Array;

/**
 * Makes a BLAKE3 function. Each one owns a WebAssembly instance whose memory holds a 256 KiB
 * window of input plus 32 bytes per 1 KiB of the largest input hashed so far (512 KiB for a
 * 16 MiB input), so make one per thread and reuse it. Not re-entrant. Throws when the
 * runtime has no WebAssembly SIMD (callers fall back to another implementation).
 */
export function createBlake3(): Blake3 {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(blake3SimdModule(8)));
  const ex = inst.exports as {
    chunks: (inp: number, groups: number, counter: number, out: number) => void;
    parents: (inp: number, groups: number, out: number) => void;
    mem: WebAssembly.Memory;
  };
  const m = new Uint32Array(16);
  const w = new Uint32Array(8);
  return (data) => {
    const n = data.length;
    if (n <= CHUNK) {
      chunkCv(data, 0, n, 0, true, w);
      return toBytes(w);
    }
    const chunks = Math.ceil(n / CHUNK);
    const cvAt = SCRATCH + WINDOW; // scratch, input window, chaining values
    const need = cvAt + chunks * 32;
    if (ex.mem.buffer.byteLength < need) ex.mem.grow(Math.ceil((need - ex.mem.buffer.byteLength) / 65536));
    const mem = new Uint8Array(ex.mem.buffer);
    const words = new Uint32Array(ex.mem.buffer);
    // Leaves: whole chunks in groups of four through SIMD, the rest (≤ 3 whole chunks and a
    // partial last one) here.
    const lastLen = n - (chunks - 1) * CHUNK;
    const whole = lastLen === CHUNK ? chunks : chunks - 1;
    for (let first = 0; first < whole; ) {
      const groups = Math.min(WINDOW / (4 * CHUNK), Math.floor((whole - first) / 4));
      if (groups === 0) break;
      mem.set(data.subarray(first * CHUNK, (first + 4 * groups) * CHUNK), SCRATCH);
      ex.chunks(SCRATCH, groups, first, cvAt + first * 32);
      first += 4 * groups;
    }
    for (let i = Math.floor(whole / 4) * 4; i < chunks; i++) {
      chunkCv(data, i * CHUNK, Math.min(CHUNK, n - i * CHUNK), i, false, w);
      words.set(w, (cvAt + i * 32) >> 2);
    }
    // Tree: pair neighbours level by level (an odd last node moves up as is); this is the
    // left-balanced tree of the specification. Four parents at a time through SIMD.
    const left = new Uint32Array(8);
    for (let count = chunks; count > 2; ) {
      const pairs = count >> 1;
      const groups = pairs >> 2;
      ex.parents(cvAt, groups, cvAt);
      for (let p = groups * 4; p < pairs; p++) {
        m.set(words.subarray((cvAt + p * 64) >> 2, (cvAt + p * 64 + 64) >> 2));
        compress(Uint32Array.from(IV), m, 0, 64, PARENT, left);
        words.set(left, (cvAt + p * 32) >> 2);
      }
      if (count & 1) words.copyWithin((cvAt + pairs * 32) >> 2, (cvAt + (count - 1) * 32) >> 2, (cvAt + count * 32) >> 2);
      count = pairs + (count & 1);
    }
    m.set(words.subarray(cvAt >> 2, (cvAt + 64) >> 2));
    compress(Uint32Array.from(IV), m, 0, 64, PARENT | ROOT, w);
    return toBytes(w);
  };
}
