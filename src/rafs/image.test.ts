// Reproduces every bootstrap-side value recorded in shared/fixtures/rafs/README.md.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BlobFeatures, FileMode, Layout, RafsFlags, RafsImage, listTree } from "./index.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const BLOB_ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
const boot = () => new Uint8Array(readFileSync(join(FIX, "rafs-v6-2.2.boot")));

describe("rafs-v6-2.2.boot", () => {
  const image = RafsImage.open(boot());

  test("EROFS superblock", () => {
    const sb = image.superblock;
    expect(sb.magic).toBe(0xe0f5e1e2);
    expect(sb.blkszbits).toBe(12);
    expect(sb.rootNid).toBe(128);
    expect(sb.inos).toBe(3);
    expect(sb.blocks).toBe(9);
    expect(sb.metaBlkaddr).toBe(2);
    expect(sb.metaBlkaddr * sb.blockSize).toBe(8192);
    expect(sb.featureCompat).toBe(0x40000000);
    expect(sb.featureIncompat).toBe(0xc);
    expect(sb.extraDevices).toBe(1);
    expect(sb.devtSlotoff).toBe(11);
    expect(sb.devtSlotoff * 128).toBe(1408);
    expect(sb.isRafs).toBe(true);
  });

  test("RAFS extended superblock", () => {
    const x = image.ext;
    expect(x.flags).toBe(0x194);
    expect(x.flags).toBe(RafsFlags.HASH_BLAKE3 | RafsFlags.EXPLICIT_UID_GID | RafsFlags.COMPRESSION_ZSTD | RafsFlags.INLINED_CHUNK_DIGEST);
    expect(x.flags & RafsFlags.ENCRYPTION_NONE).toBe(0);
    expect(x.blobTableOffset).toBe(4096);
    expect(x.blobTableSize).toBe(256);
    expect(x.chunkSize).toBe(0x100000);
    expect(x.chunkTableOffset).toBe(16384);
    expect(x.chunkTableSize).toBe(160);
    expect(x.prefetchTableOffset).toBe(0);
    expect(image.prefetch).toEqual([]);
  });

  test("device slot", () => {
    expect(image.devices).toEqual([{ tag: BLOB_ID, blocks: 9, mappedBlkaddr: 512 }]);
  });

  test("blob table entry", () => {
    expect(image.blobs).toHaveLength(1);
    const b = image.blobs[0];
    expect(b).toMatchObject({
      blobId: BLOB_ID,
      blobIndex: 0,
      chunkSize: 0x100000,
      chunkCount: 2,
      compressor: "zstd",
      digester: "blake3",
      features: 0x70000021,
      compressedSize: 14554,
      uncompressedSize: 36864,
      blobTocSize: 1024,
      ciCompressor: "none",
      ciOffset: 8314,
      ciCompressedSize: 32,
      ciUncompressedSize: 32,
    });
    expect((b?.features ?? 0) & BlobFeatures.CHUNK_INFO_V2).toBe(0);
  });

  test("tree with nids, sizes, layouts and chunk placement", () => {
    const tree = listTree(image);
    expect(tree.map((e) => [e.path, e.nid, e.inode.size])).toEqual([
      ["/", 128, 67],
      ["/lib.rs", 133, 16931],
      ["/sync_io.rs", 136, 13400],
    ]);
    const [root, lib, sync] = tree;
    expect(root?.inode).toMatchObject({ extended: true, layout: Layout.FLAT_INLINE, ino: 0, mode: FileMode.S_IFDIR | 0o755, nlink: 2 });
    expect(root?.inode.u).toBe(3); // the spec's "meaningless but deterministic" i_u of an inline-only dir
    expect(lib?.inode.layout).toBe(Layout.CHUNK_BASED);
    expect(image.chunkFormat(lib!.inode).format).toBe(0x28);
    expect(image.chunkFormat(sync!.inode).format).toBe(0x28);
    expect(lib?.chunks).toEqual([{ index: 0, fileOffset: 0, length: 16931, blobIndex: 0, ciIndex: 0, blkaddr: 0, uncompressedOffset: 0 }]);
    expect(sync?.chunks).toEqual([{ index: 0, fileOffset: 0, length: 13400, blobIndex: 0, ciIndex: 1, blkaddr: 5, uncompressedOffset: 20480 }]);
    for (const e of [lib, sync]) {
      expect(e?.inode.mode).toBe(FileMode.S_IFREG | 0o644);
      expect(e?.inode.nlink).toBe(1);
      expect(e?.xattrs).toEqual([]);
    }
  });

  test("chunk table entries carry the blake3 chunk digests and match the inodes' chunk indexes", () => {
    expect(image.chunkTable).toHaveLength(2);
    const lib = image.chunkTableEntry(image.chunks(image.lookup("/lib.rs"))[0]!);
    const sync = image.chunkTableEntry(image.chunks(image.lookup("/sync_io.rs"))[0]!);
    expect(lib).toMatchObject({
      blobIndex: 0,
      ciIndex: 0,
      compressedOffset: 0,
      compressedSize: 4828,
      uncompressedOffset: 0,
      uncompressedSize: 16931,
      flags: 1,
    });
    expect(sync).toMatchObject({
      blobIndex: 0,
      ciIndex: 1,
      compressedOffset: 4828,
      compressedSize: 2974,
      uncompressedOffset: 20480,
      uncompressedSize: 13400,
      flags: 1,
    });
    expect(lib?.digest.startsWith("f7e2735f1c6ae9cd")).toBe(true);
    expect(sync?.digest.startsWith("812465bcc9e88393")).toBe(true);
    // Sorted by digest bytes (spec §12).
    expect(image.chunkTable.map((e) => e.ciIndex)).toEqual([1, 0]);
  });

  test("the spec's worked layout example: root at 4096 of meta space, then 4256, 4352", () => {
    const m = image.superblock.metaBlkaddr * 4096;
    expect(image.inode(128).offset - m).toBe(4096);
    expect(image.inode(133).offset - m).toBe(4256);
    expect(image.inode(136).offset - m).toBe(4352);
  });

  test("lookup", () => {
    expect(image.lookup("/sync_io.rs").nid).toBe(136);
    expect(image.lookup("/").nid).toBe(128);
    expect(() => image.lookup("/nope")).toThrow(/no entry nope/);
    expect(() => image.lookup("/lib.rs/x")).toThrow(/not a directory/);
  });
});
