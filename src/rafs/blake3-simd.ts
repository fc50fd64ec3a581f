/**
 * The WebAssembly half of {@link createBlake3}: a module, assembled here at run time from a
 * few dozen opcodes (no binary is shipped, nothing is generated at build time), that runs
 * the BLAKE3 compression function on four inputs at once with 128-bit SIMD — one 32-bit lane
 * per input, the layout BLAKE3's own "hash many" implementations use.
 *
 * Bytes 0–255 of the memory are the module's scratch: each block's message words,
 * transposed, are stored there and read back by the rounds (measured: JavaScriptCore's
 * optimizing tier makes this 2× faster than keeping them in locals). Exports (memory `mem`,
 * addresses in bytes, inputs and outputs at 256 or above):
 * - `chunks(inp, groups, counter, out)`: for `groups` × 4 whole 1024-byte chunks at `inp`
 *   (chunk counters `counter`, `counter + 1`, …), writes each chunk's 32-byte chaining value
 *   to `out` (in order, 32 bytes apart).
 * - `parents(inp, groups, out)`: for `groups` × 4 parent nodes — 64 bytes each at `inp`,
 *   the left and right child chaining values — writes the parents' chaining values to `out`.
 *   `out` may equal `inp` (a tree level reduced in place).
 *
 * The algorithm is the BLAKE3 specification's (IV, message schedule, G, flags); its
 * constants are facts of that specification.
 */

/** BLAKE3's IV (SHA-256's). */
export const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
/** The message word permutation applied between rounds. */
export const MSG_PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
/** Domain flags. */
export const CHUNK_START = 1;
export const CHUNK_END = 2;
export const PARENT = 4;
export const ROOT = 8;

// --- a tiny WebAssembly encoder -------------------------------------------------------------

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (s: string) => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

const I32 = 0x7f;
const V128 = 0x7b;

/** Instruction emitter for one function body. */
class Code {
  readonly b: number[] = [];
  get(l: number) {
    this.b.push(0x20, ...uleb(l));
    return this;
  }
  set(l: number) {
    this.b.push(0x21, ...uleb(l));
    return this;
  }
  i32(n: number) {
    this.b.push(0x41, ...sleb(n | 0));
    return this;
  }
  op(...bytes: number[]) {
    this.b.push(...bytes);
    return this;
  }
  simd(opcode: number, ...imm: number[]) {
    this.b.push(0xfd, ...uleb(opcode), ...imm);
    return this;
  }
  v128Const(lanes: number[]) {
    const bytes: number[] = [];
    for (const l of lanes) bytes.push(l & 0xff, (l >>> 8) & 0xff, (l >>> 16) & 0xff, (l >>> 24) & 0xff);
    return this.simd(0x0c, ...bytes);
  }
  /** i8x16.shuffle selecting 32-bit lanes (0–3 first operand, 4–7 second). */
  shuffle32(lanes: number[]) {
    const bytes: number[] = [];
    for (const l of lanes) bytes.push(l * 4, l * 4 + 1, l * 4 + 2, l * 4 + 3);
    return this.simd(0x0d, ...bytes);
  }
  load128(addr: number, offset: number) {
    return this.get(addr).simd(0x00, 0, ...uleb(offset));
  }
}

const S = {
  splat: 0x11,
  xor: 0x51,
  or: 0x50,
  shl: 0xab,
  shrU: 0xad,
  add: 0xae,
  store: 0x0b,
};

/** Bytes of scratch at address 0 (16 transposed message words). */
export const SCRATCH = 256;

/**
 * Emits the shared part of both functions: load the 16 message words of four inputs
 * (`stride` bytes apart, at local `base`), transposed into lanes, into the scratch; run the
 * 7 rounds on v0…v15 and leave the chaining values in `cv`.
 */
function emitCompress(c: Code, L: Locals, base: number, stride: number): void {
  // Message: for each quarter (words 4q…4q+3), rows r_j = words of input j; transpose.
  for (let q = 0; q < 4; q++) {
    for (let j = 0; j < 4; j++) c.load128(base, j * stride + q * 16).set(L.r[j] as number);
    const [r0, r1, r2, r3] = L.r as [number, number, number, number];
    const [t0, t1, t2, t3] = L.t as [number, number, number, number];
    c.get(r0).get(r1).shuffle32([0, 4, 1, 5]).set(t0);
    c.get(r0).get(r1).shuffle32([2, 6, 3, 7]).set(t1);
    c.get(r2).get(r3).shuffle32([0, 4, 1, 5]).set(t2);
    c.get(r2).get(r3).shuffle32([2, 6, 3, 7]).set(t3);
    const put = (k: number, x: number, y: number, lanes: number[]) => c.i32(0).get(x).get(y).shuffle32(lanes).simd(S.store, 4, ...uleb(k * 16));
    put(4 * q, t0, t2, [0, 1, 4, 5]);
    put(4 * q + 1, t0, t2, [2, 3, 6, 7]);
    put(4 * q + 2, t1, t3, [0, 1, 4, 5]);
    put(4 * q + 3, t1, t3, [2, 3, 6, 7]);
  }
  const v = L.v;
  const msg = (k: number) => c.i32(0).simd(0x00, 4, ...uleb(k * 16));
  const rotr = (x: number, n: number) => {
    if (n === 16) c.get(x).get(x).simd(0x0d, ...[2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13]).set(x);
    else if (n === 8) c.get(x).get(x).simd(0x0d, ...[1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12]).set(x);
    else c.get(x).i32(n).simd(S.shrU).get(x).i32(32 - n).simd(S.shl).simd(S.or).set(x);
  };
  const g = (a: number, b: number, cc: number, d: number, mx: number, my: number) => {
    const [A, B, C, D] = [v[a], v[b], v[cc], v[d]] as [number, number, number, number];
    c.get(A).get(B).simd(S.add);
    msg(mx);
    c.simd(S.add).set(A);
    c.get(D).get(A).simd(S.xor).set(D);
    rotr(D, 16);
    c.get(C).get(D).simd(S.add).set(C);
    c.get(B).get(C).simd(S.xor).set(B);
    rotr(B, 12);
    c.get(A).get(B).simd(S.add);
    msg(my);
    c.simd(S.add).set(A);
    c.get(D).get(A).simd(S.xor).set(D);
    rotr(D, 8);
    c.get(C).get(D).simd(S.add).set(C);
    c.get(B).get(C).simd(S.xor).set(B);
    rotr(B, 7);
  };
  let s = [...Array(16).keys()];
  for (let round = 0; round < 7; round++) {
    const m = (i: number) => s[i] as number;
    g(0, 4, 8, 12, m(0), m(1));
    g(1, 5, 9, 13, m(2), m(3));
    g(2, 6, 10, 14, m(4), m(5));
    g(3, 7, 11, 15, m(6), m(7));
    g(0, 5, 10, 15, m(8), m(9));
    g(1, 6, 11, 12, m(10), m(11));
    g(2, 7, 8, 13, m(12), m(13));
    g(3, 4, 9, 14, m(14), m(15));
    s = MSG_PERMUTATION.map((p) => s[p] as number);
  }
  for (let i = 0; i < 8; i++) c.get(v[i] as number).get(v[i + 8] as number).simd(S.xor).set(L.cv[i] as number);
}

/** Stores cv0…cv7 (lane j = input j) as four 32-byte chaining values at local `out`. */
function emitStore(c: Code, L: Locals, out: number): void {
  const [t0, t1, t2, t3] = L.t as [number, number, number, number];
  for (let half = 0; half < 2; half++) {
    const [r0, r1, r2, r3] = L.cv.slice(half * 4, half * 4 + 4) as [number, number, number, number];
    c.get(r0).get(r1).shuffle32([0, 4, 1, 5]).set(t0);
    c.get(r0).get(r1).shuffle32([2, 6, 3, 7]).set(t1);
    c.get(r2).get(r3).shuffle32([0, 4, 1, 5]).set(t2);
    c.get(r2).get(r3).shuffle32([2, 6, 3, 7]).set(t3);
    const cols: [number, number, number[]][] = [
      [t0, t2, [0, 1, 4, 5]],
      [t0, t2, [2, 3, 6, 7]],
      [t1, t3, [0, 1, 4, 5]],
      [t1, t3, [2, 3, 6, 7]],
    ];
    for (const [j, [x, y, lanes]] of cols.entries()) {
      c.get(out).get(x).get(y).shuffle32(lanes).simd(S.store, 0, ...uleb(j * 32 + half * 16));
    }
  }
}

interface Locals {
  cv: number[];
  v: number[];
  r: number[];
  t: number[];
}

/** v128 locals after `firstFree` i32 locals/params. */
function v128Locals(firstFree: number): Locals {
  let n = firstFree;
  const take = (k: number) => Array.from({ length: k }, () => n++);
  return { cv: take(8), v: take(16), r: take(4), t: take(4) };
}
const V128_LOCALS = 8 + 16 + 4 + 4;

/** A function body's local declarations: (count, type) runs. */
const localDecls = (...runs: [number, number][]) => vec(runs.map(([n, t]) => [...uleb(n), t]));

/** Sets v8…v15 and, for `chunks`, v0…v7 from cv; `ctr` and `flags` are locals. */
function emitInitState(c: Code, L: Locals, fromCv: boolean, ctr: number | undefined, flags: number): void {
  for (let i = 0; i < 8; i++) {
    if (fromCv) c.get(L.cv[i] as number);
    else c.i32(IV[i] as number).simd(S.splat);
    c.set(L.v[i] as number);
  }
  for (let i = 0; i < 4; i++) c.i32(IV[i] as number).simd(S.splat).set(L.v[8 + i] as number);
  if (ctr !== undefined) c.get(ctr);
  else c.v128Const([0, 0, 0, 0]);
  c.set(L.v[12] as number);
  c.v128Const([0, 0, 0, 0]).set(L.v[13] as number);
  c.i32(64).simd(S.splat).set(L.v[14] as number);
  c.get(flags).simd(S.splat).set(L.v[15] as number);
}

/** `chunks(inp, groups, counter, out)`; i32 locals: 4 = block, 5 = p, 6 = flags; v128 7 = ctr. */
function chunksBody(): number[] {
  const [inp, groups, counter, out, block, p, flags, ctr] = [0, 1, 2, 3, 4, 5, 6, 7];
  const L = v128Locals(8);
  const c = new Code();
  c.op(0x02, 0x40); // block
  c.get(groups).op(0x45, 0x0d, 0); // br_if 0 when groups == 0
  c.op(0x03, 0x40); // loop (groups)
  for (let i = 0; i < 8; i++) c.i32(IV[i] as number).simd(S.splat).set(L.cv[i] as number);
  c.get(counter).simd(S.splat).v128Const([0, 1, 2, 3]).simd(S.add).set(ctr);
  c.i32(0).set(block).get(inp).set(p);
  c.op(0x03, 0x40); // loop (blocks)
  // flags = (block == 0 ? START : 0) | (block == 15 ? END : 0)
  c.i32(CHUNK_START).i32(0).get(block).op(0x45, 0x1b); // select(START, 0, block == 0)
  c.i32(CHUNK_END).i32(0).get(block).i32(15).op(0x46, 0x1b).op(0x72).set(flags);
  emitInitState(c, L, true, ctr, flags);
  emitCompress(c, L, p, 1024);
  c.get(p).i32(64).op(0x6a).set(p);
  c.get(block).i32(1).op(0x6a).set(block);
  c.get(block).i32(16).op(0x49, 0x0d, 0); // br_if loop while block < 16
  c.op(0x0b); // end loop (blocks)
  emitStore(c, L, out);
  c.get(inp).i32(4096).op(0x6a).set(inp);
  c.get(out).i32(128).op(0x6a).set(out);
  c.get(counter).i32(4).op(0x6a).set(counter);
  c.get(groups).i32(1).op(0x6b).set(groups);
  c.get(groups).op(0x0d, 0); // br_if loop while groups != 0
  c.op(0x0b, 0x0b, 0x0b); // end loop, end block, end function
  return [...localDecls([3, I32], [1 + V128_LOCALS, V128]), ...c.b];
}

/** `parents(inp, groups, out)`; i32 local 3 = flags. */
function parentsBody(): number[] {
  const [inp, groups, out, flags] = [0, 1, 2, 3];
  const L = v128Locals(4);
  const c = new Code();
  c.op(0x02, 0x40);
  c.get(groups).op(0x45, 0x0d, 0);
  c.i32(PARENT).set(flags);
  c.op(0x03, 0x40);
  emitInitState(c, L, false, undefined, flags);
  emitCompress(c, L, inp, 64);
  emitStore(c, L, out);
  c.get(inp).i32(256).op(0x6a).set(inp);
  c.get(out).i32(128).op(0x6a).set(out);
  c.get(groups).i32(1).op(0x6b).set(groups);
  c.get(groups).op(0x0d, 0);
  c.op(0x0b, 0x0b, 0x0b);
  return [...localDecls([1, I32], [V128_LOCALS, V128]), ...c.b];
}

/** The module's bytes (see the file comment). `pages`: initial memory in 64 KiB pages. */
export function blake3SimdModule(pages: number): Uint8Array {
  const fnType = (params: number) => [0x60, ...vec(Array.from({ length: params }, () => [I32])), 0];
  const bodies = [chunksBody(), parentsBody()].map((b) => [...uleb(b.length), ...b]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([fnType(4), fnType(3)])),
    ...section(3, vec([[0], [1]])),
    ...section(5, vec([[0x00, ...uleb(pages)]])),
    ...section(7, vec([
      [...name("chunks"), 0x00, 0],
      [...name("parents"), 0x00, 1],
      [...name("mem"), 0x02, 0],
    ])),
    ...section(10, vec(bodies)),
  ]);
}
