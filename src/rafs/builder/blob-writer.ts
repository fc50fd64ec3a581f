/**
 * Writes a nydus data blob (docs/rafs.md §15): chunk data, then the reverse-tar sections
 * `image.blob`, CI array + CI header (`blob.meta`), chunk digest array (`blob.digest`),
 * optionally the inline bootstrap (`image.boot`), and the ToC (`rafs.blob.toc`).
 *
 * The writer never holds the blob: each unique chunk is compressed and handed back at once
 * (so at most one chunk, raw and compressed, is in memory); what grows with the blob is the
 * CI table (16 B), the digest array (32 B) and the dedup index, per unique chunk.
 */
import { constants, zstdCompressSync } from "node:zlib";
import { internal, notImplemented } from "../../errdefs/index.ts";
import { alignUp, concat } from "../bytes.ts";
import { BlobFeatures, type BlobEntry, type Compressor, type Digester, INLINE_BLOB_ID } from "../blob-table.ts";
import { CI_HEADER_SIZE, CI_MAGIC } from "../blob-meta.ts";
import { lz4BlockEncode } from "../lz4.ts";
import { type ChunkHasher, digest, sha256Hex } from "../compress.ts";

/** One chunk of a regular file, as written to a data blob. */
export interface ChunkRef {
  /** The blob holding it (its fields are final once the blob stream has ended). */
  blob: BlobInfo;
  /** Chunk-info index in that blob. */
  ciIndex: number;
  /** Digest of the uncompressed bytes (blake3 or sha256, as the blob says). */
  digest: Uint8Array;
  /** CRC-32C of the uncompressed bytes. */
  crc32: number;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
}

/** Everything the bootstrap needs to know about a blob (one blob table entry + device slot). */
export interface BlobInfo extends Omit<BlobEntry, "blobIndex" | "blobTocDigest" | "blobMetaDigest" | "blobMetaSize" | "cipherAlgo"> {
  // The fields a blob table entry has (`blobId`: 64 hex, sha256 of the whole file with an
  // inline bootstrap, else §15.7's rule; `features` as written, INLINED_FS_META set with an
  // inline bootstrap; `compressedSize`: where an inline bootstrap begins, else the file size;
  // `uncompressedSize`: the end of the last chunk's 4 KiB-aligned slot; `blobTocSize`: ToC
  // entries + tar header, or 0 for inline builds, as nydus does), and what only a writer knows:
  /** sha256(ToC entries ‖ tar header), or undefined (inline builds). */
  blobTocDigest?: Uint8Array;
  /** Size of the blob file. */
  size: number;
  /** `sha256:<hex>` of the whole blob file (its OCI layer digest). */
  digest: string;
}

/** Options of a {@link BlobWriter}. */
export interface BlobWriterOptions {
  /** `zstd`, `lz4_block` or `none`; `gzip` is NotImplemented. */
  compressor: Compressor;
  digester: Digester;
  /** FS chunk size; a power of two in 4 KiB…16 MiB. */
  chunkSize: number;
  /** Chunk digests (default {@link digest}; see `fastChunkHasher`). */
  hasher?: ChunkHasher;
  /** CRC-32C of a chunk (default {@link crc32c}; see `fastCrc32c`). */
  crc32c?: (data: Uint8Array) => number;
}

/** Features of every blob this writer makes (ALIGNED, INLINED_CHUNK_DIGEST, tar headers, ToC). */
const BASE_FEATURES = BlobFeatures.ALIGNED | BlobFeatures.INLINED_CHUNK_DIGEST | BlobFeatures.HAS_TAR_HEADER | BlobFeatures.HAS_TOC | BlobFeatures.CAP_TAR_TOC;
const ALGO: Readonly<Record<Compressor, number>> = { none: 0, lz4_block: 1, gzip: 2, zstd: 3 };
const TOC_FLAG: Partial<Record<Compressor, number>> = { none: 0x1, zstd: 0x2, lz4_block: 0x4 };

/** CRC-32C lookup tables for slicing-by-8: table k gives the CRC of a byte followed by k zero bytes. */
const CRC32C_TABLES: readonly Uint32Array[] = (() => {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1] as Uint32Array;
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = ((prev[n] as number) >>> 8) ^ (t0[(prev[n] as number) & 0xff] as number);
    tables.push(t);
  }
  return tables;
})();

/**
 * CRC-32C (Castagnoli, iSCSI) of `data`, as nydus stores in the chunk table. Slicing-by-8:
 * eight bytes per step (a byte-at-a-time loop cost a fifth of a conversion's CPU).
 */
export function crc32c(data: Uint8Array): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC32C_TABLES as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];
  let c = 0xffffffff;
  let i = 0;
  const n8 = data.length - (data.length % 8);
  for (; i < n8; i += 8) {
    const lo = (c ^ ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24))) >>> 0;
    const hi = ((data[i + 4] as number) | ((data[i + 5] as number) << 8) | ((data[i + 6] as number) << 16) | ((data[i + 7] as number) << 24)) >>> 0;
    c =
      (t7[lo & 0xff] as number) ^
      (t6[(lo >>> 8) & 0xff] as number) ^
      (t5[(lo >>> 16) & 0xff] as number) ^
      (t4[lo >>> 24] as number) ^
      (t3[hi & 0xff] as number) ^
      (t2[(hi >>> 8) & 0xff] as number) ^
      (t1[(hi >>> 16) & 0xff] as number) ^
      (t0[hi >>> 24] as number);
  }
  for (; i < data.length; i++) c = (t0[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Compresses `raw` with `algo` (zstd: one standard frame, level 3, content size in the header,
 * no checksum). Returns undefined when the result is not strictly smaller (the caller stores
 * raw bytes). lz4_block: one LZ4 block ({@link lz4BlockEncode}). Throws NotImplemented for gzip.
 *
 * zstd stays on `node:zlib`'s streaming compressor: `Bun.zstdCompressSync` (one-shot
 * `ZSTD_compress`) is faster and leaves less garbage, but splits blocks differently on mixed
 * data, and blob bytes (and so blob ids) must not change (compress.test.ts).
 */
export function compress(algo: Compressor, raw: Uint8Array): Uint8Array | undefined {
  if (algo === "none") return undefined;
  if (algo === "lz4_block") {
    const out = lz4BlockEncode(raw);
    return out.length < raw.length ? out : undefined;
  }
  if (algo !== "zstd") throw notImplemented(`rafs builder: compressor ${algo} is not supported (use zstd, lz4_block or none)`);
  const out = zstdCompressSync(raw, { params: { [constants.ZSTD_c_compressionLevel]: 3, [constants.ZSTD_c_checksumFlag]: 0 } });
  return out.length < raw.length ? new Uint8Array(out.buffer, out.byteOffset, out.length) : undefined;
}

/**
 * The 512-byte tar header nydus writes after a payload (tar-rs `Header::new_gnu`, §15.1):
 * name, mode/uid/gid all zero bytes, octal size, zero mtime, checksum, type '0', GNU magic.
 */
export function blobTarHeader(name: string, size: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, s: string) => h.set(new TextEncoder().encode(s), off);
  put(0, name);
  put(124, `${size.toString(8).padStart(11, "0")}\0`);
  put(136, "00000000000\0");
  h[156] = 0x30;
  put(257, "ustar  \0");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
  put(148, `${sum.toString(8).padStart(7, "0")}\0`);
  return h;
}

/** One 128-byte ToC entry. */
function tocEntry(name: string, compressor: Compressor, sha256hex: string, offset: number, csize: number, usize: number): Uint8Array {
  const e = new Uint8Array(128);
  const v = new DataView(e.buffer);
  v.setUint32(0, TOC_FLAG[compressor] ?? 0, true);
  e.set(new TextEncoder().encode(name), 8);
  e.set(Buffer.from(sha256hex, "hex"), 24);
  v.setBigUint64(56, BigInt(offset), true);
  v.setBigUint64(64, BigInt(csize), true);
  v.setBigUint64(72, BigInt(usize), true);
  return e;
}

/** Result of {@link BlobWriter.addChunk}. */
export interface AddedChunk {
  ref: ChunkRef;
  /** Bytes to append to the blob, or undefined when the chunk was deduplicated. */
  bytes?: Uint8Array;
}

/**
 * Stateful writer of one data blob. Call {@link addChunk} for every FS chunk of every regular
 * file in tar order, emitting the returned bytes in order, then {@link finish} once and emit
 * its parts. {@link info} is complete after `finish`.
 */
export class BlobWriter {
  /** The blob's table data; the same object is referenced by every {@link ChunkRef}. */
  readonly info: BlobInfo;
  private offset = 0;
  private uncompressedEnd = 0;
  private readonly ci: Uint8Array[] = [];
  private readonly digests: Uint8Array[] = [];
  private readonly dedup = new Map<string, ChunkRef>();
  /**
   * sha256 of every byte (the OCI layer digest). The other two digests are prefixes or
   * near-copies of the same stream, so they fork from it instead of hashing the chunk data
   * again: the ToC `image.blob` digest (chunk data + its tar header) is a copy taken after
   * that header, and {@link idHash} a copy taken just before the digest array.
   */
  private readonly fileHash = new Bun.CryptoHasher("sha256");
  /** sha256 of everything except the digest array payload (§15.7); forked at that array. */
  private idHash: Bun.CryptoHasher | undefined;
  private finished = false;
  /** ToC entries between {@link finishSections} and {@link finishToc}. */
  private toc: Uint8Array[] | undefined;

  /** Throws InvalidArgument for a bad chunk size, NotImplemented for gzip. */
  constructor(private readonly opts: BlobWriterOptions) {
    if (opts.compressor === "gzip") throw notImplemented("rafs builder: compressor gzip is not supported (use zstd, lz4_block or none)");
    this.info = {
      blobId: "",
      chunkSize: opts.chunkSize,
      chunkCount: 0,
      compressor: opts.compressor,
      digester: opts.digester,
      features: BASE_FEATURES,
      compressedSize: 0,
      uncompressedSize: 0,
      blobTocSize: 0,
      ciCompressor: "none",
      ciOffset: 0,
      ciCompressedSize: 0,
      ciUncompressedSize: 0,
      size: 0,
      digest: "",
    };
  }

  /** Accounts for `b` as the next bytes of the file; `hashed` false leaves it out of the blob id. */
  private emit(b: Uint8Array, hashed = true): Uint8Array {
    if (!hashed) this.idHash ??= this.fileHash.copy();
    else this.idHash?.update(b);
    this.fileHash.update(b);
    this.offset += b.length;
    return b;
  }

  /**
   * Digests one chunk (≤ chunk size, non-empty); returns the existing reference when a chunk
   * with the same digest and size is already in this blob, else compresses it and returns the
   * bytes to append. The caller passes 1…chunkSize bytes (not checked here).
   */
  addChunk(raw: Uint8Array): AddedChunk {
    const d = (this.opts.hasher ?? digest)(this.opts.digester, raw);
    const key = `${Buffer.from(d).toString("hex")}:${raw.length}`;
    const seen = this.dedup.get(key);
    if (seen) return { ref: seen };
    const packed = compress(this.opts.compressor, raw);
    const stored = packed ?? raw;
    const ref: ChunkRef = {
      blob: this.info,
      ciIndex: this.ci.length,
      digest: d,
      crc32: (this.opts.crc32c ?? crc32c)(raw),
      compressedOffset: this.offset,
      compressedSize: stored.length,
      uncompressedOffset: this.uncompressedEnd,
      uncompressedSize: raw.length,
      compressed: packed !== undefined,
    };
    this.uncompressedEnd += alignUp(raw.length, 4096);
    this.ci.push(ciV1(ref));
    this.digests.push(d);
    this.dedup.set(key, ref);
    return { ref, bytes: this.emit(stored) };
  }

  /**
   * Writes the tail of the blob and completes {@link info}. `inlineBootstrap`, when given, is
   * called with `info` complete except `blobId` (the inline bootstrap names its own blob
   * `"x"×64`) and `blobToc*`, and its result is stored zstd-compressed as `image.boot`; the
   * blob id is then sha256 of the whole file. Without it the id follows §15.7 (sha256 of all
   * but the digest array). Returns the parts to append, in order. Call once.
   */
  finish(inlineBootstrap?: (info: BlobInfo) => Uint8Array): Uint8Array[] {
    const parts = this.finishSections(inlineBootstrap !== undefined);
    return parts.concat(this.finishToc(inlineBootstrap?.(this.info)));
  }

  /**
   * {@link finish} in two steps, for an inline bootstrap made elsewhere (another thread):
   * this one writes everything up to where `image.boot` goes and leaves {@link info}
   * complete but for what `finish` fills after calling `inlineBootstrap`; then call
   * {@link finishToc} with the bootstrap (or nothing when `inline` is false).
   */
  finishSections(inline: boolean): Uint8Array[] {
    if (this.finished) throw internal("BlobWriter.finish called twice");
    this.finished = true;
    const parts: Uint8Array[] = [];
    const info = this.info;
    const dataSize = this.offset;
    parts.push(this.emit(blobTarHeader("image.blob", dataSize)));
    const dataDigest = this.fileHash.copy().digest("hex");
    // CI array, CI header.
    const ciData = concat(this.ci);
    const ciPacked = ciData.length > 0 ? compress(this.opts.compressor, ciData) : undefined;
    info.features = BASE_FEATURES | (inline ? BlobFeatures.INLINED_FS_META : 0);
    info.chunkCount = this.ci.length;
    info.uncompressedSize = this.uncompressedEnd;
    info.ciCompressor = ciPacked ? this.opts.compressor : "none";
    info.ciOffset = this.offset;
    info.ciCompressedSize = (ciPacked ?? ciData).length;
    info.ciUncompressedSize = ciData.length;
    const header = ciHeader(info);
    parts.push(this.emit(ciPacked ?? ciData), this.emit(header), this.emit(blobTarHeader("blob.meta", info.ciCompressedSize + CI_HEADER_SIZE)));
    // Chunk digest array: excluded from the blob-id hash, its tar header is not.
    const digestArray = concat(this.digests);
    const digestAt = this.offset;
    parts.push(this.emit(digestArray, false), this.emit(blobTarHeader("blob.digest", digestArray.length)));
    this.toc = [
      tocEntry("image.blob", "none", dataDigest, 0, dataSize, info.uncompressedSize),
      tocEntry("blob.meta", info.ciCompressor, sha256Hex(ciData), info.ciOffset, info.ciCompressedSize, info.ciUncompressedSize),
      tocEntry("blob.meta.header", "none", sha256Hex(header), info.ciOffset + info.ciCompressedSize, CI_HEADER_SIZE, CI_HEADER_SIZE),
      tocEntry("blob.digest", "none", sha256Hex(digestArray), digestAt, digestArray.length, digestArray.length),
    ];
    if (inline) {
      info.compressedSize = this.offset;
      info.blobId = INLINE_BLOB_ID;
    }
    return parts;
  }

  /** The second step of {@link finish}: `boot` is the inline bootstrap, if the blob has one. */
  finishToc(boot?: Uint8Array): Uint8Array[] {
    const toc = this.toc;
    if (!toc) throw internal("BlobWriter.finishToc called before finishSections");
    this.toc = undefined;
    const parts: Uint8Array[] = [];
    const info = this.info;
    const inline = (info.features & BlobFeatures.INLINED_FS_META) !== 0;
    if (inline !== (boot !== undefined)) throw internal("BlobWriter.finishToc: the inline bootstrap is missing or unexpected");
    if (boot) {
      const packed = compress("zstd", boot);
      const at = this.offset;
      parts.push(this.emit(packed ?? boot), this.emit(blobTarHeader("image.boot", (packed ?? boot).length)));
      toc.push(tocEntry("image.boot", packed ? "zstd" : "none", sha256Hex(boot), at, (packed ?? boot).length, boot.length));
    }
    const tocBytes = concat(toc);
    const tocHeader = blobTarHeader("rafs.blob.toc", tocBytes.length);
    parts.push(this.emit(tocBytes), this.emit(tocHeader));
    info.size = this.offset;
    info.digest = `sha256:${this.fileHash.digest("hex")}`;
    if (inline) {
      info.blobId = info.digest.slice(7);
    } else {
      info.compressedSize = this.offset;
      if (!this.idHash) throw internal("BlobWriter: the digest array was never emitted");
      info.blobId = this.idHash.digest("hex");
      info.blobTocSize = tocBytes.length + 512;
      info.blobTocDigest = Buffer.from(sha256Hex(tocBytes, tocHeader), "hex");
    }
    return parts;
  }
}

/** CI v1 entry (§15.4). */
function ciV1(c: ChunkRef): Uint8Array {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  const us = BigInt(c.uncompressedSize - 1);
  const cs = BigInt(c.compressedSize - 1);
  const u = (((us >> 20n) & 0xfn) << 8n) | (BigInt(c.uncompressedOffset) & 0xfff_ffff_f000n) | ((us & 0xfffffn) << 44n);
  const k = (BigInt(c.compressedOffset) & 0xff_ffff_ffffn) | (((cs >> 20n) & 0xfn) << 40n) | ((cs & 0xfffffn) << 44n);
  v.setBigUint64(0, u, true);
  v.setBigUint64(8, k, true);
  return out;
}

/** The 4096-byte CI header (§15.3). */
function ciHeader(info: BlobInfo): Uint8Array {
  const h = new Uint8Array(CI_HEADER_SIZE);
  const v = new DataView(h.buffer);
  v.setUint32(0, CI_MAGIC, true);
  v.setUint32(4, info.features, true);
  v.setUint32(8, ALGO[info.ciCompressor], true);
  v.setUint32(12, info.chunkCount, true);
  v.setBigUint64(16, BigInt(info.ciOffset), true);
  v.setBigUint64(24, BigInt(info.ciCompressedSize), true);
  v.setBigUint64(32, BigInt(info.ciUncompressedSize), true);
  v.setUint32(4092, CI_MAGIC, true);
  return h;
}
