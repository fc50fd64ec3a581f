/**
 * The tail of a nydus data blob: reverse-tar headers (payload first, 512-byte header after it),
 * the ToC (`rafs.blob.toc`), the inline bootstrap (`image.boot`) and the blob-id rule —
 * docs/rafs.md §15.1, §15.6, §15.7.
 */
import { asciiZ, malformed, readChecked, Struct, toHex, type ByteSource } from "./bytes.ts";
import type { Compressor } from "./blob-table.ts";
import { decompress, decompressAtMost, sha256Hex } from "./compress.ts";

/** Size of a tar header. */
export const TAR_HEADER_SIZE = 512;

/** A tar header in a blob and the payload right before it. */
export interface TarEntry {
  name: string;
  /** Offset of the 512-byte header. */
  headerOffset: number;
  /** Offset of the payload (= headerOffset − size). */
  dataOffset: number;
  size: number;
}

/**
 * Parses a ustar/GNU header at absolute offset `at`; returns undefined when the block is not a
 * tar header (bad checksum or octal fields), so callers can stop a backward walk.
 */
export function parseTarHeader(h: Uint8Array, at: number): Omit<TarEntry, "dataOffset"> | undefined {
  if (h.length !== TAR_HEADER_SIZE) return undefined;
  const octal = (off: number, len: number): number | undefined => {
    const txt = asciiZ(h.subarray(off, off + len));
    if (txt === undefined) return undefined;
    const t = txt.trim();
    if (!/^[0-7]*$/.test(t)) return undefined;
    return t === "" ? 0 : Number.parseInt(t, 8);
  };
  const sum = octal(148, 8);
  if (sum === undefined) return undefined;
  let actual = 0;
  for (let i = 0; i < TAR_HEADER_SIZE; i++) actual += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
  if (actual !== sum) return undefined;
  const name = asciiZ(h.subarray(0, 100));
  const size = octal(124, 12);
  if (!name || size === undefined) return undefined;
  return { name, headerOffset: at, size };
}

/**
 * Walks the reverse-tar headers from the end of a blob towards its start, yielding each entry
 * (last first). Stops at the first block that is not a valid tar header (the chunk data of a
 * blob without tar headers) or at offset 0. Each step moves back at least 512 bytes, so the
 * walk always terminates. Throws InvalidArgument when a header's payload would start before
 * offset 0.
 */
export function* walkReverseTar(src: ByteSource): Generator<TarEntry> {
  let end = src.size;
  while (end >= TAR_HEADER_SIZE) {
    const at = end - TAR_HEADER_SIZE;
    const h = parseTarHeader(readChecked(src, at, TAR_HEADER_SIZE, "tar_header"), at);
    if (!h) return;
    if (h.size > at) throw malformed(`tar_header[${h.name}].size`, at + 124, `payload of ${h.size} bytes would start before the blob`);
    yield { ...h, dataOffset: at - h.size };
    end = at - h.size;
  }
}

/** ToC entry flags → compressor. */
const TOC_COMPRESSORS: Readonly<Record<number, Compressor>> = { 0x1: "none", 0x2: "zstd", 0x4: "lz4_block" };

/** One 128-byte ToC entry. */
export interface TocEntry {
  flags: number;
  compressor: Compressor;
  name: string;
  /** Hex sha256 of the uncompressed payload. */
  digest: string;
  compressedOffset: number;
  compressedSize: number;
  uncompressedSize: number;
}

/** The ToC of a blob. */
export interface Toc {
  entries: TocEntry[];
  /** Offset of the entries. */
  offset: number;
  /** Entries + tar header (= blob table `blob_toc_size`). */
  size: number;
  /** sha256(entries ‖ tar header) (= blob table `blob_toc_digest`). */
  digest: string;
}

/**
 * Decodes ToC entries from `bytes` (absolute offset `base`). Reserved fields are ignored
 * (old builders left garbage there). Throws InvalidArgument naming the entry when the length is
 * not a multiple of 128, the name is not ASCII, the compressor flags are unknown, or the entry's
 * range is not inside `[0, blobSize)`.
 */
export function parseTocEntries(bytes: Uint8Array, base: number, blobSize: number): TocEntry[] {
  if (bytes.length % 128 !== 0) throw malformed("toc", base, `${bytes.length} bytes is not a multiple of 128`);
  const out: TocEntry[] = [];
  for (let i = 0; i < bytes.length / 128; i++) {
    const s: Struct = new Struct(bytes.subarray(i * 128, i * 128 + 128), base + i * 128, `toc[${i}]`);
    const flags = s.u32(0, "flags");
    const compressor = TOC_COMPRESSORS[flags & 0x7];
    if (!compressor || flags & ~0x7) s.fail(0, "flags", `unknown compressor flags 0x${flags.toString(16)}`);
    const name = asciiZ(s.raw(8, 16, "name"));
    if (!name) s.fail(8, "name", "empty or not ASCII");
    const e: TocEntry = {
      flags,
      compressor,
      name,
      digest: toHex(s.raw(24, 32, "uncompressed_digest")),
      compressedOffset: s.u64(56, "compressed_offset"),
      compressedSize: s.u64(64, "compressed_size"),
      uncompressedSize: s.u64(72, "uncompressed_size"),
    };
    // Builders before v2.4 wrote image.blob's offset as the end of the chunk data (fixture
    // be7d77ee: 7802 with size 7802), so that one entry's range is not checked; readers never
    // use it to fetch.
    if (name !== "image.blob" && e.compressedOffset + e.compressedSize > blobSize)
      s.fail(56, "compressed_offset", `[${e.compressedOffset}, ${e.compressedOffset + e.compressedSize}) is outside the ${blobSize}-byte blob`);
    out.push(e);
  }
  return out;
}

/**
 * Reads the ToC of a blob: the last 512 bytes must be a tar header named `rafs.blob.toc`, its
 * payload the entries. Returns undefined when the blob has no ToC. Throws InvalidArgument
 * when the ToC exists but is malformed.
 */
export function readToc(src: ByteSource): Toc | undefined {
  if (src.size < TAR_HEADER_SIZE) return undefined;
  const at = src.size - TAR_HEADER_SIZE;
  const hdr = readChecked(src, at, TAR_HEADER_SIZE, "tar_header");
  const h = parseTarHeader(hdr, at);
  if (h?.name !== "rafs.blob.toc") return undefined;
  if (h.size > at) throw malformed("tar_header[rafs.blob.toc].size", at + 124, `ToC of ${h.size} bytes would start before the blob`);
  const bytes = readChecked(src, at - h.size, h.size, "toc");
  return { entries: parseTocEntries(bytes, at - h.size, src.size), offset: at - h.size, size: h.size + TAR_HEADER_SIZE, digest: sha256Hex(bytes, hdr) };
}

/** Where a blob's payload (e.g. the inline bootstrap) lives and how it is stored. */
export interface BlobPayload {
  name: string;
  offset: number;
  compressedSize: number;
  /** Undefined when found by the tar walk only (size unknown until decompressed). */
  uncompressedSize?: number;
  compressor: Compressor;
  /** Hex sha256 of the uncompressed payload, when the ToC records it. */
  digest?: string;
}

const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/**
 * Locates payload `name` (default `image.boot`) in a blob: from the ToC when there is one,
 * else by walking the reverse-tar headers backwards. Returns undefined when absent.
 * Throws InvalidArgument on a malformed ToC or tar chain.
 */
export function locatePayload(src: ByteSource, name = "image.boot"): BlobPayload | undefined {
  const toc = readToc(src);
  if (toc) {
    const e = toc.entries.find((x) => x.name === name);
    if (!e) return undefined;
    return {
      name,
      offset: e.compressedOffset,
      compressedSize: e.compressedSize,
      uncompressedSize: e.uncompressedSize,
      compressor: e.compressor,
      digest: e.digest,
    };
  }
  for (const t of walkReverseTar(src)) {
    if (t.name !== name) continue;
    // Without a ToC the compressor is not recorded: an EROFS bootstrap begins with 1024 zero
    // bytes, so a zstd magic at the start is unambiguous.
    const head = readChecked(src, t.dataOffset, Math.min(4, t.size), name);
    const zstd = head.length === 4 && ZSTD_MAGIC.every((b, i) => head[i] === b);
    return { name, offset: t.dataOffset, compressedSize: t.size, compressor: zstd ? "zstd" : "none" };
  }
  return undefined;
}

/**
 * Reads and decompresses a located payload, checking its sha256 when the ToC recorded one.
 * `maxSize` bounds the output when the uncompressed size is not recorded (default 256 MiB).
 * Throws InvalidArgument when it does not decompress to the recorded size or the digest differs.
 */
export function readPayload(src: ByteSource, p: BlobPayload, maxSize = 256 << 20): Uint8Array {
  const raw = readChecked(src, p.offset, p.compressedSize, p.name);
  let out: Uint8Array;
  if (p.uncompressedSize !== undefined) {
    if (p.uncompressedSize > maxSize) throw malformed(`${p.name}.uncompressed_size`, p.offset, `${p.uncompressedSize} exceeds the limit ${maxSize}`);
    out = decompress(p.compressor, raw, p.uncompressedSize, p.name);
  } else if (p.compressor === "zstd") {
    out = decompressAtMost("zstd", raw, maxSize, p.name);
  } else {
    out = raw;
  }
  if (p.digest) {
    const got = sha256Hex(out);
    if (got !== p.digest) throw malformed(`${p.name}.digest`, p.offset, `sha256 ${got} ≠ ToC ${p.digest}`);
  }
  return out;
}

/**
 * Finds and reads the inline bootstrap (`image.boot`) of a data blob. Returns undefined when
 * the blob has none. See {@link locatePayload} and {@link readPayload} for failure modes.
 */
export function readInlineBootstrap(src: ByteSource, maxSize?: number): Uint8Array | undefined {
  const p = locatePayload(src);
  return p ? readPayload(src, p, maxSize) : undefined;
}

/**
 * Computes a blob's id the way `nydus-image` names non-inline blobs: lowercase hex sha256 of
 * every byte except the chunk-digest array payload (`blob.digest`, located via the ToC or the
 * tar walk). Without such an array this is sha256 of the whole blob. Reads in 1 MiB pieces.
 */
export function computeBlobId(src: ByteSource): string {
  const d = locatePayload(src, "blob.digest");
  const skipFrom = d ? d.offset : src.size;
  const skipTo = d ? d.offset + d.compressedSize : src.size;
  const h = new Bun.CryptoHasher("sha256");
  const feed = (from: number, to: number) => {
    for (let p = from; p < to; p += 1 << 20) h.update(readChecked(src, p, Math.min(1 << 20, to - p), "blob"));
  };
  feed(0, skipFrom);
  feed(skipTo, src.size);
  return h.digest("hex");
}
