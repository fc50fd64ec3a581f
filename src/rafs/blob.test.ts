// Blob-side fixture facts: byte map, CI table, ToC, chunk digests, blob id, file contents,
// the inline bootstrap of the 2fa78cad blob and the ZRan blob.meta.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  BlobFeatures,
  CiFlags,
  RafsImage,
  bytesSource,
  computeBlobId,
  decodeChunk,
  digest,
  listTree,
  parseBlobMetaFile,
  planRange,
  readBlobMeta,
  readChunkDigests,
  readFile,
  readInlineBootstrap,
  readToc,
  sha256Hex,
  toHex,
  uncompressedBlob,
  walkReverseTar,
  type BlobAccess,
} from "./index.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const BLOB_ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
const INLINE = "2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca";
const ZRAN = "233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a.blob.meta";
const SHA_CHUNK0 = "1810eba864521293bb0d6b55a3c82318d4d89f294ed761c456d9088a17de0c69";
const SHA_CHUNK1 = "e629ab260ff0dc02a24648a3e0dd8c13a5daf233d535c330e3201925f5eeff96";
const load = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));

describe(`blob ${BLOB_ID.slice(0, 8)}`, () => {
  const image = RafsImage.open(load("rafs-v6-2.2.boot"));
  const bytes = load(BLOB_ID);
  const src = bytesSource(bytes);
  const blob = image.blobs[0]!;
  const meta = readBlobMeta(src, blob);

  test("byte map: reverse-tar headers", () => {
    expect(bytes.length).toBe(14554);
    expect([...walkReverseTar(src)].map((t) => [t.name, t.headerOffset, t.dataOffset, t.size])).toEqual([
      ["rafs.blob.toc", 14042, 13530, 512],
      ["blob.digest", 13018, 12954, 64],
      ["blob.meta", 12442, 8314, 4128], // CI array [8314,8346) + CI header [8346,12442)
      ["image.blob", 7802, 0, 7802],
    ]);
  });

  test("CI header and v1 entries: chunk 0 [0,4828), chunk 1 [4828,7802)", () => {
    expect(meta.header).toMatchObject({
      features: 0x70000021,
      ciCompressor: "none",
      ciEntries: 2,
      ciOffset: 8314,
      ciCompressedSize: 32,
      ciUncompressedSize: 32,
    });
    expect(meta.chunks.map((c) => [c.compressedOffset, c.compressedSize, c.uncompressedOffset, c.uncompressedSize, c.compressed])).toEqual([
      [0, 4828, 0, 16931, true],
      [4828, 2974, 20480, 13400, true],
    ]);
  });

  test("decompressed chunk sha256s and blake3 digests (chunk table and blob.digest agree)", () => {
    const digests = readChunkDigests(src, blob)!;
    expect(digests.map(toHex).map((d) => d.slice(0, 16))).toEqual(["f7e2735f1c6ae9cd", "812465bcc9e88393"]);
    const shas = meta.chunks.map((c) => {
      const plain = decodeChunk(blob, c, bytes.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize), { expectedDigest: digests[c.ciIndex] });
      expect(toHex(digest("blake3", plain))).toBe(image.chunkTable.find((e) => e.ciIndex === c.ciIndex)!.digest);
      return [plain.length, sha256Hex(plain)];
    });
    expect(shas).toEqual([
      [16931, SHA_CHUNK0],
      [13400, SHA_CHUNK1],
    ]);
  });

  test("blob id = sha256 of the blob without its chunk-digest array [12954,13018)", () => {
    expect(sha256Hex(bytes).startsWith("4b16fb83")).toBe(true);
    expect(sha256Hex(bytes.subarray(0, 12954), bytes.subarray(13018))).toBe(BLOB_ID);
    expect(computeBlobId(src)).toBe(BLOB_ID);
  });

  test("ToC: 4 entries, blob_toc_digest = sha256 of [13530,14554), reserved garbage ignored", () => {
    const toc = readToc(src)!;
    expect(toc.offset).toBe(13530);
    expect(toc.size).toBe(1024);
    expect(toc.size).toBe(blob.blobTocSize);
    expect(toc.digest).toBe(sha256Hex(bytes.subarray(13530, 14554)));
    expect(toc.digest).toBe(blob.blobTocDigest);
    expect(toc.entries.map((e) => [e.name, e.compressor, e.compressedOffset, e.compressedSize, e.uncompressedSize])).toEqual([
      ["image.blob", "none", 7802, 7802, 36864],
      ["blob.meta", "none", 8314, 32, 32],
      ["blob.meta.header", "none", 8346, 4096, 4096],
      ["blob.digest", "none", 12954, 64, 64],
    ]);
    expect(toc.entries[0]?.digest).toBe(sha256Hex(bytes.subarray(0, 8314))); // chunk bytes ‖ their tar header
    expect(toc.entries[1]?.digest).toBe(sha256Hex(meta.ciData));
    expect(toc.entries[2]?.digest).toBe(sha256Hex(bytes.subarray(8346, 12442)));
    expect(toc.entries[3]?.digest).toBe(sha256Hex(bytes.subarray(12954, 13018)));
    // The reserved bytes of this fixture are not zero (an old builder), and parsing still succeeds.
    const reserved = toc.entries.map((_, i) => bytes.subarray(13530 + i * 128 + 80, 13530 + i * 128 + 128));
    expect(reserved.some((r) => r.some((b) => b !== 0))).toBe(true);
  });

  test("planner: ranges map to whole chunks, gaps need no fetch, adjacent chunks merge", () => {
    expect(planRange(blob, meta.chunks, 0, 10).fetches).toEqual([{ offset: 0, length: 4828, chunks: [meta.chunks[0]!] }]);
    expect(planRange(blob, meta.chunks, 16931, 20480 - 16931).fetches).toEqual([]); // alignment padding only
    const both = planRange(blob, meta.chunks, 16000, 5000);
    expect(both.chunks.map((c) => c.ciIndex)).toEqual([0, 1]);
    expect(both.fetches.map((f) => [f.offset, f.length])).toEqual([[0, 7802]]);
    expect(() => planRange(blob, meta.chunks, 36000, 1000)).toThrow(/outside the uncompressed size 36864/);
  });

  test("reading /lib.rs and /sync_io.rs end to end through planner, zstd and blake3 verification", () => {
    const digests = readChunkDigests(src, blob);
    const access = (): BlobAccess => ({ blob, src, chunks: meta.chunks, digests });
    expect(sha256Hex(readFile(image, image.lookup("/lib.rs"), access))).toBe(SHA_CHUNK0);
    expect(sha256Hex(readFile(image, image.lookup("/sync_io.rs"), access))).toBe(SHA_CHUNK1);
    // A partial read inside the file.
    const whole = readFile(image, image.lookup("/sync_io.rs"), access);
    expect(readFile(image, image.lookup("/sync_io.rs"), access, 1000, 77)).toEqual(whole.subarray(1000, 1077));
    const space = uncompressedBlob(access());
    expect(space.length).toBe(36864);
    expect(sha256Hex(space.subarray(20480, 20480 + 13400))).toBe(SHA_CHUNK1);
    expect(space.subarray(16931, 20480).every((b) => b === 0)).toBe(true);
  });
});

describe(`inline-bootstrap blob ${INLINE.slice(0, 8)}`, () => {
  const bytes = load(INLINE);
  const src = bytesSource(bytes);

  test("ToC and reverse tar locate a zstd image.boot that parses as RAFS v6", () => {
    const toc = readToc(src)!;
    expect(toc.entries.map((e) => e.name)).toEqual(["image.blob", "blob.meta", "blob.meta.header", "image.boot"]);
    expect(toc.entries[3]).toMatchObject({ compressor: "zstd", compressedOffset: 7997, compressedSize: 501, uncompressedSize: 20480 });
    expect([...walkReverseTar(src)].map((t) => t.name)).toEqual(["rafs.blob.toc", "image.boot", "blob.meta", "image.blob"]);
    expect(sha256Hex(bytes)).toBe(INLINE);
    const boot = readInlineBootstrap(src)!;
    expect(boot.length).toBe(20480);
    const image = RafsImage.open(boot);
    expect(image.blobs[0]).toMatchObject({ features: BlobFeatures.ALIGNED, chunkCount: 3, compressor: "zstd", ciOffset: 3341, compressedSize: 2829 });
    // This pre-release builder named the blob sha256(bytes before the inline bootstrap), and
    // wrote one device slot (the fixtures README says extra_devices = 0; the bytes say 1).
    expect(image.blobs[0]?.blobId).toBe(sha256Hex(bytes.subarray(0, 7997)));
    expect(image.superblock.extraDevices).toBe(1);
    expect(image.devices).toEqual([{ tag: image.blobs[0]!.blobId, blocks: 3, mappedBlkaddr: 0 }]);
    expect(listTree(image).map((e) => [e.path, e.inode.size])).toEqual([
      ["/", 86],
      ["/error.rs", 2816],
      ["/lib.rs", 678],
      ["/logger.rs", 3115],
    ]);
  });

  test("the bootstrap found by the tar walk alone (no ToC) is the same", () => {
    const withoutToc = bytesSource(bytes.subarray(0, bytes.length - 1024)); // drop ToC + its header
    expect(readToc(withoutToc)).toBeUndefined();
    expect(readInlineBootstrap(withoutToc)).toEqual(readInlineBootstrap(src)!);
  });

  test("its files read back and match the chunk table's blake3 digests", () => {
    const image = RafsImage.open(readInlineBootstrap(src)!);
    const blob = image.blobs[0]!;
    const meta = readBlobMeta(src, blob);
    const digests = meta.chunks.map((c) => Buffer.from(image.chunkTable.find((e) => e.ciIndex === c.ciIndex)!.digest, "hex"));
    for (const e of listTree(image).filter((x) => x.chunks.length > 0)) {
      const data = readFile(image, e.inode, () => ({ blob, src, chunks: meta.chunks, digests }));
      expect(data.length).toBe(e.inode.size);
    }
  });
});

describe("ZRan blob.meta", () => {
  const meta = parseBlobMetaFile(bytesSource(load(ZRAN)));

  test("header and 163 CI v2 entries", () => {
    expect(meta.header).toMatchObject({
      features: 0xf,
      ciCompressor: "none",
      ciEntries: 163,
      ciOffset: 0,
      ciCompressedSize: 660112,
      ciUncompressedSize: 660112,
      zranOffset: 3912,
      zranSize: 656200,
      zranCount: 21,
    });
    expect(meta.chunks).toHaveLength(163);
    expect(meta.chunks.every((c) => c.flags === (CiFlags.COMPRESSED | CiFlags.ZRAN))).toBe(true);
    expect(meta.chunks[0]).toMatchObject({ compressedOffset: 184, compressedSize: 649, uncompressedOffset: 0, uncompressedSize: 1404, data: 1024n });
    expect(meta.chunks[162]).toMatchObject({ uncompressedOffset: 23875584, uncompressedSize: 364, compressedOffset: 9838918, compressedSize: 102 });
    expect(Number(meta.chunks[162]!.data >> 32n)).toBe(20); // the last ZRan context
    expect(meta.zran).toHaveLength(21);
    expect(meta.zran[0]).toMatchObject({ inOffset: 10, outOffset: 0, dictSize: 0 });
    expect(meta.zran[1]).toMatchObject({ dictSize: 32768, ctxBits: 5 });
  });

  test("ZRan chunks are planned as NotImplemented, not misread", () => {
    const blob = { blobId: "zran", uncompressedSize: 24 << 20, compressedSize: 0 } as Parameters<typeof planRange>[0];
    expect(() => planRange(blob, meta.chunks, 0, 100)).toThrow(/ZRan, batch and encrypted/);
  });
});
