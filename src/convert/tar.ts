import { invalidArgument } from "../errdefs/index.ts";
import type { LayerEntryHeader } from "../rafs/index.ts";

/** Entry types of a tar stream that an OCI layer may hold (the builder's vocabulary). */
export type TarEntryType = LayerEntryHeader["type"];

/**
 * One tar entry's metadata, with PAX/GNU extensions applied: exactly what the RAFS builder
 * takes per entry (path normalised: no leading `./` or `/`, no trailing `/`, no `.`/empty
 * segments; `linkname` of a hard link normalised like `path`; `mtime` in seconds, PAX may
 * give fractions; xattrs from `SCHILY.xattr.*` / `LIBARCHIVE.xattr.*`), plus the byte offset
 * of the header block in the uncompressed stream, for error messages.
 */
export type TarHeader = LayerEntryHeader & { offset: number };

/** An entry and its content; `body` must be read (or left: it is skipped) before the next. */
export interface TarEntry {
  header: TarHeader;
  body: AsyncIterable<Uint8Array>;
}

const BLOCK = 512;
const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

/** Pulls exact byte counts out of a chunked stream. */
class ByteReader {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  offset = 0;
  private readonly it: AsyncIterator<Uint8Array>;
  constructor(src: AsyncIterable<Uint8Array>) {
    this.it = src[Symbol.asyncIterator]();
  }
  private async fill(): Promise<boolean> {
    const n = await this.it.next();
    if (n.done) return false;
    this.buf = this.pos < this.buf.length ? concat(this.buf.subarray(this.pos), n.value) : n.value;
    this.pos = 0;
    return true;
  }
  /** Exactly `n` bytes, or null at a clean end of stream before the first byte. */
  async exact(n: number): Promise<Uint8Array | null> {
    while (this.buf.length - this.pos < n) {
      if (!(await this.fill())) {
        if (this.buf.length === this.pos) return null;
        throw invalidArgument(`tar stream truncated at byte ${this.offset + (this.buf.length - this.pos)}`);
      }
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }
  /**
   * Reads and discards whatever follows, so that the source runs to its end (where a
   * decompressor checks its digests).
   */
  async drain(): Promise<void> {
    for (;;) {
      const n = await this.it.next();
      if (n.done) return;
    }
  }

  /** Up to `max` bytes (at least one), failing on end of stream. */
  async some(max: number): Promise<Uint8Array> {
    if (this.buf.length === this.pos && !(await this.fill())) {
      throw invalidArgument(`tar stream truncated at byte ${this.offset}`);
    }
    const n = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const dec = new TextDecoder();
function str(b: Uint8Array, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const z = f.indexOf(0);
  return dec.decode(z >= 0 ? f.subarray(0, z) : f);
}

/** A numeric header field: octal text, or GNU base-256 when the high bit is set. */
function num(b: Uint8Array, off: number, len: number, field: string, at: number): number {
  const f = b.subarray(off, off + len);
  if ((f[0] as number) & 0x80) {
    let v = (f[0] as number) & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + (f[i] as number);
    if (!Number.isSafeInteger(v)) throw invalidArgument(`tar header at byte ${at}: ${field} is too large`);
    return v;
  }
  const t = str(b, off, len).trim();
  if (t === "") return 0;
  if (!/^[0-7]+$/.test(t)) throw invalidArgument(`tar header at byte ${at}: ${field} ${JSON.stringify(t)} is not octal`);
  return Number.parseInt(t, 8);
}

/**
 * Normalises an entry path and refuses one that leaves the layer's root: `..` segments that
 * climb above it (InvalidArgument naming the path and the header offset). Leading `/` and
 * `./` are dropped (tar and containerd treat such paths as relative to the root).
 */
export function normalizeTarPath(p: string, at: number): string {
  if (Buffer.byteLength(p) > TarLimit.pathBytes) throw invalidArgument(`tar entry at byte ${at}: its path is longer than ${TarLimit.pathBytes} bytes`);
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (Buffer.byteLength(seg) > TarLimit.nameBytes)
      throw invalidArgument(`tar entry ${JSON.stringify(p.slice(0, 100))}… at byte ${at}: a name is longer than ${TarLimit.nameBytes} bytes`);
    if (seg === "..") {
      if (out.length === 0) throw invalidArgument(`tar entry ${JSON.stringify(p)} at byte ${at} escapes the layer root`);
      out.pop();
      continue;
    }
    out.push(seg);
  }
  return out.join("/");
}

/** Parses PAX records (`<len> <key>=<value>\n`). */
function parsePax(b: Uint8Array, at: number): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let i = 0;
  while (i < b.length) {
    if (b[i] === 0) break;
    const sp = b.indexOf(0x20, i);
    const len = sp > i ? Number.parseInt(dec.decode(b.subarray(i, sp)), 10) : Number.NaN;
    if (!Number.isInteger(len) || len <= 0 || i + len > b.length) throw invalidArgument(`tar PAX header at byte ${at}: bad record length`);
    const rec = b.subarray(sp + 1, i + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw invalidArgument(`tar PAX header at byte ${at}: record without '='`);
    out.set(dec.decode(rec.subarray(0, eq)), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/** Longest PAX or GNU long-name payload we accept (a forged size must not allocate GiBs). */
const MAX_META = 1 << 20;

/**
 * What a layer may hold, so that a hostile tar costs bounded time and memory and the converter
 * never builds what the reader (or the kernel) would refuse. Each is refused with
 * InvalidArgument naming the entry's byte offset.
 */
export const TarLimit = {
  /** Entries in one layer (about 2.5 KB of converter memory each). */
  entries: 1 << 19,
  /** Bytes of one path component (NAME_MAX). */
  nameBytes: 255,
  /** Bytes of a whole path or link target (PATH_MAX). */
  pathBytes: 4095,
  /** Records of all global PAX headers together (they apply to every later entry). */
  globalRecords: 64,
  /** Extended attributes of one entry. */
  xattrs: 128,
  /** Bytes of one entry's extended attributes, names and values together (one xattr value's limit). */
  xattrBytes: 64 << 10,
} as const;

/**
 * A PAX number in [min, max] (decimal, fractions only where `fraction`): InvalidArgument
 * naming the key otherwise — a `size=-1` must not reach the builder.
 */
function paxInt(v: string | undefined, key: string, min: number, max: number, at: number, fraction = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(fraction ? /^-?\d+(\.\d+)?$/ : /^\d+$/).test(v.trim()) || !Number.isFinite(n) || n < min || n > max) {
    throw invalidArgument(`tar PAX header at byte ${at}: ${key}=${JSON.stringify(v.slice(0, 40))} is not a number in ${min}..${max}`);
  }
  return n;
}

/**
 * Reads a tar stream (ustar, GNU long names/links, PAX extended and global headers,
 * base-256 numbers) from uncompressed chunks and yields its entries in order. Each entry's
 * body streams; unread body bytes are skipped when the next entry is requested. Stops at
 * the end-of-archive blocks (reading the source to its end) or at the end of the stream. Throws InvalidArgument naming the
 * byte offset for a bad checksum, a malformed field, a truncated stream, or a path that
 * escapes the root.
 */
export async function* readTar(src: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(src);
  let pax = new Map<string, Uint8Array>();
  const globalPax = new Map<string, Uint8Array>();
  let count = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const at = r.offset;
    const h = await r.exact(BLOCK);
    if (h === null) return;
    if (h.every((x) => x === 0)) {
      // End of archive (the second zero block may be absent). Run the source to its end:
      // the layer's digest and diff_id are checked there, and record padding follows.
      await r.drain();
      return;
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] as number);
    if (num(h, 148, 8, "checksum", at) !== sum) throw invalidArgument(`tar header at byte ${at}: checksum mismatch`);
    const flag = String.fromCharCode(h[156] as number);
    const size = num(h, 124, 12, "size", at);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      if (size > MAX_META) throw invalidArgument(`tar header at byte ${at}: extension of ${size} bytes is too large`);
      const data = (await r.exact(padded)) ?? new Uint8Array(0);
      const body = data.subarray(0, size);
      if (flag === "x") pax = parsePax(body, at);
      else if (flag === "g") {
        for (const [k, v] of parsePax(body, at)) globalPax.set(k, v);
        if (globalPax.size > TarLimit.globalRecords) throw invalidArgument(`tar header at byte ${at}: more than ${TarLimit.globalRecords} global PAX records`);
      } else if (flag === "L") longName = str(body, 0, size);
      else longLink = str(body, 0, size);
      continue;
    }
    const type = TYPES[flag];
    if (!type) throw invalidArgument(`tar header at byte ${at}: unsupported entry type ${JSON.stringify(flag)}`);
    if (++count > TarLimit.entries) throw invalidArgument(`tar header at byte ${at}: more than ${TarLimit.entries} entries in one layer`);
    // This entry's records win over the global ones; neither map is copied per entry.
    const raw = (k: string) => pax.get(k) ?? globalPax.get(k);
    const text = (k: string) => {
      const v = raw(k);
      return v === undefined ? undefined : dec.decode(v);
    };
    const prefix = str(h, 345, 155);
    const rawPath = text("path") ?? longName ?? (prefix ? `${prefix}/${str(h, 0, 100)}` : str(h, 0, 100));
    const rawLink = text("linkpath") ?? longLink ?? str(h, 157, 100);
    if (Buffer.byteLength(rawLink) > TarLimit.pathBytes) throw invalidArgument(`tar header at byte ${at}: link target longer than ${TarLimit.pathBytes} bytes`);
    const realSize = paxInt(text("size"), "size", 0, Number.MAX_SAFE_INTEGER, at) ?? size;
    const xattrs: Record<string, Uint8Array> = {};
    let xattrCount = 0;
    let xattrBytes = 0;
    for (const m of [globalPax, pax]) {
      for (const [k, v] of m) {
        let name: string;
        let value: Uint8Array;
        if (k.startsWith("SCHILY.xattr.")) [name, value] = [k.slice(13), v];
        else if (k.startsWith("LIBARCHIVE.xattr.")) [name, value] = [decodeURIComponent(k.slice(17)), Buffer.from(dec.decode(v), "base64")];
        else continue;
        if (!(name in xattrs)) xattrCount++;
        xattrBytes += Buffer.byteLength(name) + value.length;
        if (Buffer.byteLength(name) > TarLimit.nameBytes || xattrCount > TarLimit.xattrs || xattrBytes > TarLimit.xattrBytes) {
          throw invalidArgument(
            `tar header at byte ${at}: extended attributes over the limits (${TarLimit.xattrs} attributes, ${TarLimit.xattrBytes} bytes, names of ${TarLimit.nameBytes} bytes)`,
          );
        }
        xattrs[name] = value;
      }
    }
    const header: TarHeader = {
      path: normalizeTarPath(rawPath, at),
      type,
      mode: num(h, 100, 8, "mode", at) & 0o7777,
      uid: paxInt(text("uid"), "uid", 0, 0xffff_ffff, at) ?? num(h, 108, 8, "uid", at),
      gid: paxInt(text("gid"), "gid", 0, 0xffff_ffff, at) ?? num(h, 116, 8, "gid", at),
      size: type === "file" ? realSize : 0,
      mtime: paxInt(text("mtime"), "mtime", -(2 ** 53) + 1, 2 ** 53 - 1, at, true) ?? num(h, 136, 12, "mtime", at),
      linkname: type === "link" ? normalizeTarPath(rawLink, at) : rawLink,
      devmajor: num(h, 329, 8, "devmajor", at),
      devminor: num(h, 337, 8, "devminor", at),
      xattrs,
      offset: at,
    };
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    const dataLen = type === "file" ? realSize : size; // links/dirs carry no data, but skip any
    const dataPadded = Math.ceil(dataLen / BLOCK) * BLOCK;
    let left = dataLen;
    const body = (async function* () {
      while (left > 0) {
        const c = await r.some(left);
        left -= c.length;
        yield c;
      }
    })();
    yield { header, body };
    while (left > 0) left -= (await r.some(left)).length; // unread body
    if (dataPadded > dataLen) await r.exact(dataPadded - dataLen);
  }
}
