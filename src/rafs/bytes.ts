/**
 * Bounds-checked little-endian reading over a byte source: the only way `src/rafs` touches
 * input bytes. Every failure is an InvalidArgument naming the field and the byte offset.
 */
import { invalidArgument, type RafsnapError } from "../errdefs/index.ts";

/**
 * Random access to an immutable byte string (a bootstrap, a data blob, a blob.meta file).
 * `readAt(offset, length)` must return exactly `length` bytes; callers in this folder never
 * ask for bytes outside `[0, size)`.
 */
export interface ByteSource {
  /** Total number of bytes. */
  readonly size: number;
  /** Returns bytes `[offset, offset + length)`; may return a view (callers do not mutate it). */
  readAt(offset: number, length: number): Uint8Array;
}

/** Wraps an in-memory byte array as a {@link ByteSource}; `readAt` returns subarray views. */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return { size: bytes.length, readAt: (offset, length) => bytes.subarray(offset, offset + length) };
}

/** Builds the InvalidArgument error used throughout the reader: `rafs: <field> at offset <n>: <problem>`. */
export function malformed(field: string, offset: number, problem: string): RafsnapError {
  return invalidArgument(`rafs: ${field} at offset ${offset}: ${problem}`);
}

/**
 * Reads `[offset, offset + length)` from `src` after checking it lies inside the source.
 * Throws InvalidArgument naming `field` when the range is negative, not an integer, past the
 * end, or when the source returns a short read.
 */
export function readChecked(src: ByteSource, offset: number, length: number, field: string): Uint8Array {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw malformed(field, offset, `invalid range (length ${length})`);
  }
  if (offset + length > src.size) {
    throw malformed(field, offset, `range of ${length} bytes ends at ${offset + length}, past the end of the input (${src.size} bytes)`);
  }
  const out = src.readAt(offset, length);
  if (out.length !== length) throw malformed(field, offset, `short read: got ${out.length} of ${length} bytes`);
  return out;
}

/**
 * A fixed-size structure already read into memory, with field accessors that know the
 * structure's absolute offset so error messages can name it.
 */
export class Struct {
  private readonly view: DataView;
  /**
   * @param bytes the structure's bytes
   * @param base absolute offset of `bytes[0]` in the input, for messages
   * @param what structure name used as the prefix of field names in messages
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly base: number,
    readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private check(off: number, n: number, field: string): void {
    if (off < 0 || off + n > this.bytes.length) throw malformed(`${this.what}.${field}`, this.base + off, "field outside the structure");
  }
  /** Unsigned 8-bit field at `off`. */
  u8(off: number, field: string): number {
    this.check(off, 1, field);
    return this.view.getUint8(off);
  }
  /** Unsigned 16-bit little-endian field at `off`. */
  u16(off: number, field: string): number {
    this.check(off, 2, field);
    return this.view.getUint16(off, true);
  }
  /** Unsigned 32-bit little-endian field at `off`. */
  u32(off: number, field: string): number {
    this.check(off, 4, field);
    return this.view.getUint32(off, true);
  }
  /** Unsigned 64-bit little-endian field as bigint. */
  u64n(off: number, field: string): bigint {
    this.check(off, 8, field);
    return this.view.getBigUint64(off, true);
  }
  /**
   * Unsigned 64-bit little-endian field as a number; throws InvalidArgument when it exceeds
   * `max` (default 2^53 − 1) so forged sizes cannot slip into arithmetic.
   */
  u64(off: number, field: string, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.u64n(off, field);
    if (v > BigInt(max)) throw malformed(`${this.what}.${field}`, this.base + off, `value ${v} exceeds ${max}`);
    return Number(v);
  }
  /** Raw bytes `[off, off + n)` (a view). */
  raw(off: number, n: number, field: string): Uint8Array {
    this.check(off, n, field);
    return this.bytes.subarray(off, off + n);
  }
  /** Throws InvalidArgument naming `field` at `off` with `problem`. */
  fail(off: number, field: string, problem: string): never {
    throw malformed(`${this.what}.${field}`, this.base + off, problem);
  }
}

/**
 * True when `b` spans the whole of its (non-shared) ArrayBuffer, so the buffer can be
 * transferred to another thread without taking other bytes along.
 */
export function ownsWholeBuffer(b: Uint8Array): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer;
}

/** Rounds `x` up to a multiple of `a` (a > 0). */
export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** Lowercase hex of `b`. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** True when every byte of `b` is zero. */
export function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** Text up to the first NUL, decoded as latin1-safe ASCII; `undefined` when a byte is not printable ASCII. */
export function asciiZ(b: Uint8Array): string | undefined {
  let end = b.indexOf(0);
  if (end < 0) end = b.length;
  let s = "";
  for (let i = 0; i < end; i++) {
    const c = b[i] as number;
    if (c < 0x20 || c > 0x7e) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}

/** Concatenation of `parts`. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
