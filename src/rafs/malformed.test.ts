// Malformed input: every failure is an InvalidArgument naming the field and offset, never a
// crash, an out-of-range read, an endless loop or an allocation sized by a forged field.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import {
  RafsImage,
  bytesSource,
  decodeChunk,
  listTree,
  lz4BlockDecode,
  parseBlobMetaFile,
  readBlobMeta,
  readChunkDigests,
  readFile,
  readInlineBootstrap,
  sha256Hex,
  type ByteSource,
} from "./index.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const BLOB_ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
const load = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));
const boot = () => load("rafs-v6-2.2.boot");

/** Runs fn and returns the RafsnapError it throws (fails the test otherwise). */
function caught(fn: () => unknown): RafsnapError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RafsnapError);
    return e as RafsnapError;
  }
  throw new Error("expected a RafsnapError");
}

/** A source that records the largest read, to prove forged sizes never drive reads. */
function recording(bytes: Uint8Array): ByteSource & { largest: number } {
  const s = {
    size: bytes.length,
    largest: 0,
    readAt(offset: number, length: number) {
      s.largest = Math.max(s.largest, length);
      return bytes.subarray(offset, offset + length);
    },
  };
  return s;
}

const openAndWalk = (b: Uint8Array | ByteSource) => listTree(RafsImage.open(b));
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const SYNC_IO_INODE = 8192 + 136 * 32;

describe("forged bootstrap fields", () => {
  test("inode size forged to 2^40: chunk index array past the end, named, no allocation", () => {
    const b = boot();
    dv(b).setBigUint64(SYNC_IO_INODE + 8, 1n << 40n, true);
    const src = recording(b);
    const e = caught(() => openAndWalk(src));
    expect(e.kind).toBe(ErrorKind.InvalidArgument);
    expect(e.message).toContain("inode[136].i_size");
    expect(e.message).toContain(`offset ${SYNC_IO_INODE + 8}`);
    expect(src.largest).toBeLessThanOrEqual(4096);
  });

  test("inode size forged past 2^53 is rejected as a field", () => {
    const b = boot();
    dv(b).setBigUint64(SYNC_IO_INODE + 8, 1n << 62n, true);
    expect(caught(() => openAndWalk(b)).message).toMatch(/inode\[136\]\.i_size at offset 12552: value \d+ exceeds/);
  });

  test("inode size forged to 2 chunks: the extra index reads as device 0 and is rejected", () => {
    const b = boot();
    dv(b).setBigUint64(SYNC_IO_INODE + 8, 0x100001n, true);
    expect(caught(() => openAndWalk(b)).message).toMatch(/chunk_index\.\[1\]\.device_id .*hole/);
  });

  test("forged blob count (blob table size) names s_blob_table_size", () => {
    const b = boot();
    dv(b).setUint32(1152 + 16, 256 * 1_000_000, true);
    const e = caught(() => RafsImage.open(b));
    expect(e.kind).toBe(ErrorKind.InvalidArgument);
    expect(e.message).toContain("ext_superblock.s_blob_table_size at offset 1168");
  });

  test("forged extra_devices and device/blob disagreement", () => {
    const b = boot();
    dv(b).setUint16(1024 + 86, 60000, true);
    expect(caught(() => RafsImage.open(b)).message).toContain("superblock.extra_devices at offset 1110");
    const c = boot();
    dv(c).setUint32(1152 + 16, 512, true); // two blob entries, one device
    expect(caught(() => RafsImage.open(c)).message).toMatch(/blob_table\[1\]|extra_devices/);
  });

  test("forged chunk_count disagrees with the CI size", () => {
    const b = boot();
    dv(b).setUint32(4096 + 72, 0xffffff, true);
    expect(caught(() => RafsImage.open(b)).message).toContain("blob_table[0].ci_uncompressed_size at offset 4224");
  });

  test("truncated bootstraps", () => {
    for (const n of [0, 1000, 2000, 4096, 12288 + 10, 16384]) {
      const e = caught(() => openAndWalk(boot().subarray(0, n)));
      expect(e.kind).toBe(ErrorKind.InvalidArgument);
      expect(e.message).toMatch(/^rafs: .+ at offset \d+: /);
    }
  });

  test("bad magic, unknown flags, bad chunk size", () => {
    const a = boot();
    a[1024] = 0;
    expect(caught(() => RafsImage.open(a)).message).toContain("superblock.magic at offset 1024");
    const f = boot();
    dv(f).setUint32(1152, 0x194 | 0x400, true);
    expect(caught(() => RafsImage.open(f)).message).toContain("ext_superblock.s_flags");
    const c = boot();
    dv(c).setUint32(1152 + 20, 3000, true);
    expect(caught(() => RafsImage.open(c)).message).toContain("ext_superblock.s_chunk_size");
  });

  test("directory cycle: a child dirent pointing back at the root", () => {
    const b = boot();
    // Root dirents are inline at 12288 + 64: [., .., lib.rs, sync_io.rs]; make lib.rs a dir = root.
    const lib = 12288 + 64 + 2 * 12;
    dv(b).setBigUint64(lib, 128n, true);
    b[lib + 10] = 2;
    expect(caught(() => openAndWalk(b)).message).toContain("directory nid 128 reached twice");
  });

  test("dirent nid far outside the bootstrap", () => {
    const b = boot();
    dv(b).setBigUint64(12288 + 64 + 2 * 12, 1n << 40n, true);
    expect(caught(() => openAndWalk(b)).message).toMatch(/inode\[1099511627776\]/);
  });

  test("dirent nameoff garbage", () => {
    const b = boot();
    dv(b).setUint16(12288 + 64 + 8, 7, true);
    expect(caught(() => openAndWalk(b)).message).toContain("dir[128].block[0].nameoff at offset 12360");
  });

  test("random single-byte corruption anywhere in the metadata never escapes as a non-RafsnapError", () => {
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const base = boot();
    let failures = 0;
    for (let i = 0; i < 3000; i++) {
      const b = base.slice();
      const region = [1024, 1024 + 512, 4096, 4096 + 256, 12288, 12288 + 256, 16384, 16384 + 160];
      const r = Math.floor(rnd() * 4) * 2;
      const at = (region[r] as number) + Math.floor(rnd() * ((region[r + 1] as number) - (region[r] as number)));
      b[at] = (b[at] as number) ^ (1 << Math.floor(rnd() * 8));
      try {
        const image = RafsImage.open(b);
        for (const e of listTree(image)) if (e.chunks.length) image.chunkTableEntry(e.chunks[0]!);
      } catch (e) {
        if (!(e instanceof RafsnapError)) throw e;
        expect(e.kind).toBe(ErrorKind.InvalidArgument);
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(0);
  });
});

describe("blob data", () => {
  const image = RafsImage.open(boot());
  const blob = image.blobs[0]!;

  test("a flipped byte in a chunk: error names the blob and chunk (digest or decompression)", () => {
    const clean = load(BLOB_ID);
    const meta = readBlobMeta(bytesSource(clean), blob);
    const digests = readChunkDigests(bytesSource(clean), blob)!;
    const c1 = meta.chunks[1]!;
    let digestErrors = 0;
    for (let at = c1.compressedOffset; at < c1.compressedOffset + c1.compressedSize; at += 7) {
      const b = clean.slice();
      b[at] = (b[at] as number) ^ 0x01;
      const src = bytesSource(b);
      let data: Uint8Array | undefined;
      const e = (() => {
        try {
          data = readFile(image, image.lookup("/sync_io.rs"), () => ({ blob, src, chunks: meta.chunks, digests }));
        } catch (err) {
          return err as RafsnapError;
        }
      })();
      if (!e) {
        // A few bits do not change the output (e.g. a zstd block header's last-block flag):
        // then the data must be exactly right.
        expect(sha256Hex(data!)).toBe("e629ab260ff0dc02a24648a3e0dd8c13a5daf233d535c330e3201925f5eeff96");
        continue;
      }
      expect(e).toBeInstanceOf(RafsnapError);
      expect(e.kind).toBe(ErrorKind.InvalidArgument);
      expect(e.message).toContain(`blob ${BLOB_ID} chunk 1 (uncompressed offset 20480)`);
      if (e.message.includes("blake3 digest mismatch")) digestErrors++;
    }
    // zstd has no checksum here, so most flips decompress to wrong bytes that only the digest catches.
    expect(digestErrors).toBeGreaterThan(0);
  });

  test("a flipped byte caught by the digest alone names expected and actual digests", () => {
    const b = load(BLOB_ID);
    const meta = readBlobMeta(bytesSource(b), blob);
    const c0 = meta.chunks[0]!;
    const digests = readChunkDigests(bytesSource(b), blob)!;
    for (let at = c0.compressedSize - 1; at > 0; at--) {
      const x = b.slice(c0.compressedOffset, c0.compressedOffset + c0.compressedSize);
      x[at] = (x[at] as number) ^ 0x20;
      try {
        decodeChunk(blob, c0, x, { expectedDigest: digests[0] });
      } catch (e) {
        if ((e as Error).message.includes("digest mismatch")) {
          expect((e as Error).message).toMatch(/chunk 0 .*blake3 digest mismatch: expected f7e2735f1c6ae9cd[0-9a-f]+, got [0-9a-f]{64}/);
          return;
        }
      }
    }
    throw new Error("no flip produced a digest mismatch");
  });

  test("CI array and header tampering", () => {
    const b = load(BLOB_ID);
    dv(b).setUint32(8346 + 12, 99, true); // s_ci_entries
    expect(caught(() => readBlobMeta(bytesSource(b), blob)).message).toContain("ci_header.s_ci_entries at offset 8358");
    const m = load(BLOB_ID);
    m[8346] = 0;
    expect(caught(() => readBlobMeta(bytesSource(m), blob)).message).toContain("ci_header.s_magic at offset 8346");
  });

  test("blob.meta file with a forged CI size or count", () => {
    const z = load("233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a.blob.meta");
    const h = z.length - 4096;
    const a = z.slice();
    dv(a).setBigUint64(h + 32, 1n << 39n, true);
    expect(caught(() => parseBlobMetaFile(bytesSource(a))).message).toContain("s_ci_uncompressed_size");
    const c = z.slice();
    dv(c).setUint32(h + 12, 0xffffffff, true);
    expect(caught(() => parseBlobMetaFile(bytesSource(c))).message).toMatch(/ci_entries at offset 0: 4294967295 entries/);
  });

  test("truncated inline blob: image.boot cannot be read, named", () => {
    const b = load("2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca");
    const bad = b.slice();
    bad[7997 + 100] = (bad[7997 + 100] as number) ^ 0xff;
    expect(caught(() => readInlineBootstrap(bytesSource(bad))).message).toContain("image.boot");
  });

  test("lz4 corruption is bounded", () => {
    expect(caught(() => lz4BlockDecode(new Uint8Array([0xf0, 0xff, 0xff]), 10)).message).toContain("lz4");
    expect(caught(() => lz4BlockDecode(new Uint8Array([0x10, 0x41, 0x05, 0x00]), 100)).message).toContain("match offset 5");
  });
});
