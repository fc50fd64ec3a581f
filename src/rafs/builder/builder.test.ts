// Builder round trips through the reader (no root needed): fixture-derived byte identity of the
// bootstrap layout, blob sections and ids, all-entry-type.tar, dedup, determinism, bad input.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, RafsnapError } from "../../errdefs/index.ts";
import { bytesSource } from "../bytes.ts";
import { parseCiHeader } from "../blob-meta.ts";
import { RafsImage } from "../image.ts";
import { computeBlobId, readInlineBootstrap, readToc, walkReverseTar } from "../toc.ts";
import { listTree } from "../tree.ts";
import {
  blobTarHeader,
  buildImageBootstrap,
  buildLayer,
  LayerTreeBuilder,
  storesData,
  writeBootstrap,
  type BlobInfo,
  type FileInode,
  type LayerEntry,
  type TreeNode,
} from "./index.ts";
import { blobAccess, buildFromTar, rafsView } from "../../../test/support/rafs-testing.ts";

const FIX = join(import.meta.dir, "../../../../shared/fixtures/rafs");
const ALL = join(FIX, "all-entry-type.tar");
const tmp = mkdtempSync(join(tmpdir(), "rafs-builder-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Tar entries from literal descriptions (for inputs GNU tar will not produce). */
async function* entries(
  list: { path: string; type?: LayerEntry["header"]["type"]; data?: string; linkname?: string; xattrs?: Record<string, Uint8Array> }[],
): AsyncGenerator<LayerEntry> {
  let offset = 0;
  for (const e of list) {
    const data = new TextEncoder().encode(e.data ?? "");
    const type = e.type ?? "file";
    yield {
      header: {
        path: e.path,
        type,
        mode: type === "dir" ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        size: type === "file" ? data.length : 0,
        mtime: 1,
        linkname: e.linkname ?? "",
        devmajor: 0,
        devminor: 0,
        xattrs: e.xattrs ?? {},
        offset,
      },
      body: (async function* () {
        if (data.length) yield data;
      })(),
    };
    offset += 512;
  }
}

async function drain(b: ReturnType<typeof buildLayer>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of b.blob) parts.push(p);
  return Buffer.concat(parts);
}

describe("layout matches nydus-image (fixture rafs-v6-2.2.boot)", () => {
  test("rebuilding the fixture's tree gives its bytes except the documented version differences", () => {
    const boot = new Uint8Array(readFileSync(join(FIX, "rafs-v6-2.2.boot")));
    const img = RafsImage.open(boot);
    const b = img.blobs[0] as (typeof img.blobs)[number];
    const info: BlobInfo = { ...b, blobTocDigest: Buffer.from(b.blobTocDigest, "hex"), size: 14554, digest: "" };
    const inode = (e: ReturnType<typeof listTree>[number]): FileInode => ({
      mode: e.inode.mode,
      uid: e.inode.uid,
      gid: e.inode.gid,
      mtime: e.inode.mtime,
      mtimeNsec: e.inode.mtimeNsec,
      size: e.inode.size,
      xattrs: new Map(),
      rdevMajor: 0,
      rdevMinor: 0,
      chunks: e.chunks.map((c) => {
        const t = img.chunkTableEntry(c);
        if (!t) throw new Error("no chunk table entry");
        return {
          blob: info,
          ciIndex: c.ciIndex,
          digest: Buffer.from(t.digest, "hex"),
          crc32: 0,
          compressedOffset: t.compressedOffset,
          compressedSize: t.compressedSize,
          uncompressedOffset: t.uncompressedOffset,
          uncompressedSize: t.uncompressedSize,
          compressed: (t.flags & 1) === 1,
        };
      }),
    });
    const [rootE, ...rest] = listTree(img);
    if (!rootE) throw new Error("empty");
    const root: TreeNode = {
      name: new Uint8Array(0),
      inode: inode(rootE),
      children: new Map(rest.map((e) => [e.path.slice(1), { name: Buffer.from(e.path.slice(1)), inode: inode(e) }])),
    };
    const out = writeBootstrap(root, { chunkSize: b.chunkSize, compressor: "zstd", digester: "blake3", merged: false, prefetchRoot: false });
    const diffs: number[] = [];
    for (let i = 0; i < boot.length; i++) if (out[i] !== boot[i]) diffs.push(i);
    expect(out.length).toBe(boot.length);
    // 1155: ENCRYPTION_NONE flag (current builders); 1476–1477: device slot mapped_blkaddr
    // (512 KiB alignment today, 2 MiB then); 12308: root i_ino 1 (was 0); 16420/16500: chunk
    // table flag HAS_CRC32 (v2.3.1+). Everything else — inode placement, dirents, chunk
    // indexes, chunk table order, blob table — is byte-identical.
    expect(diffs).toEqual([1155, 1476, 1477, 12308, 16420, 16500]);
  });

  test("blob tar header equals the fixture's image.blob header", () => {
    const blob = new Uint8Array(readFileSync(join(FIX, "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef")));
    expect(Buffer.from(blobTarHeader("image.blob", 7802))).toEqual(Buffer.from(blob.subarray(7802, 8314)));
    expect(Buffer.from(blobTarHeader("rafs.blob.toc", 512))).toEqual(Buffer.from(blob.subarray(14042, 14554)));
  });
});

describe("all-entry-type.tar", () => {
  for (const compressor of ["none", "zstd", "lz4_block"] as const) {
    test(`round trip through the reader (${compressor})`, async () => {
      const { blob, result } = await buildFromTar(ALL, { compressor });
      const boot = buildImageBootstrap([result]);
      const img = RafsImage.open(boot);
      expect(img.blobs.map((b) => b.blobId)).toEqual([result.blob.blobId]);
      expect(img.blobs[0]?.features).toBe(0x70000021);
      expect(img.ext.flags).toBe({ zstd: 0x80, lz4_block: 0x2, none: 0x1 }[compressor] | 0x4 | 0x10 | 0x20 | 0x100 | 0x0100_0000);
      const view = rafsView(img, blobAccess(img, new Map([[result.blob.blobId, blob]])));
      expect(Object.keys(view)).toEqual([
        "/",
        "/tar",
        "/tar/dir1",
        "/tar/dir1/dir3",
        "/tar/dir1/dir3/hardlink1.txt",
        "/tar/dir1/dir3/xfile.txt",
        "/tar/dir1/hardlink2.txt",
        "/tar/dir2",
        "/tar/dir2/hardlink3.txt",
        "/tar/dir2/symlink1.txt",
      ]);
      const hl = view["/tar/dir2/hardlink3.txt"];
      expect(hl?.linkGroup).toBe("/tar/dir1/dir3/hardlink1.txt");
      expect(hl?.size).toBe(15);
      expect(view["/tar/dir1/hardlink2.txt"]?.sha256).toBe(hl?.sha256 as string);
      expect(view["/tar/dir2/symlink1.txt"]?.symlink).toBe("../dir1/dir3/file1.txt");
      expect(view["/"]?.mode).toBe(0o40755); // synthesized root (no ./ entry)
      const nlink = listTree(img).find((e) => e.path === "/tar/dir1/hardlink2.txt")?.inode.nlink;
      expect(nlink).toBe(4);
    });
  }

  test("blob sections, ToC and inline bootstrap (nydusify layout); id = sha256 of the file", async () => {
    const { blob, result } = await buildFromTar(ALL, { compressor: "zstd" });
    const src = bytesSource(blob);
    expect(result.blob.blobId).toBe(new Bun.CryptoHasher("sha256").update(blob).digest("hex"));
    expect(result.blob.digest).toBe(`sha256:${result.blob.blobId}`);
    expect([...walkReverseTar(src)].map((t) => t.name)).toEqual(["rafs.blob.toc", "image.boot", "blob.digest", "blob.meta", "image.blob"]);
    expect(readToc(src)?.entries.map((e) => e.name)).toEqual(["image.blob", "blob.meta", "blob.meta.header", "blob.digest", "image.boot"]);
    const h = parseCiHeader(blob.subarray(result.blob.ciOffset + result.blob.ciCompressedSize, result.blob.ciOffset + result.blob.ciCompressedSize + 4096), 0);
    expect(h.features).toBe(0x70000023);
    expect(h.ciEntries).toBe(1);
    const inline = RafsImage.open(readInlineBootstrap(src) as Uint8Array);
    expect(inline.blobs[0]?.blobId).toBe("x".repeat(64));
    expect(inline.blobs[0]?.features).toBe(0x70000023);
    expect(inline.blobs[0]?.compressedSize).toBe(result.blob.compressedSize);
    expect(Buffer.from(result.bootstrap)).toEqual(Buffer.from(readInlineBootstrap(src) as Uint8Array));
  });

  test("without inline bootstrap: id excludes the digest array (§15.7), ToC digest recorded", async () => {
    const { blob, result } = await buildFromTar(ALL, { compressor: "none", inlineBootstrap: false });
    expect(result.blob.blobId).toBe(computeBlobId(bytesSource(blob)));
    expect(result.blob.compressedSize).toBe(blob.length);
    const toc = readToc(bytesSource(blob));
    expect(toc?.entries.map((e) => e.name)).toEqual(["image.blob", "blob.meta", "blob.meta.header", "blob.digest"]);
    const img = RafsImage.open(result.bootstrap);
    expect(img.blobs[0]?.blobTocDigest).toBe(toc?.digest as string);
    expect(img.blobs[0]?.blobTocSize).toBe(toc?.size as number);
  });
});

describe("chunking and dedup", () => {
  test("identical chunks are stored once; a file of 3.5 chunks reads back; empty file has no chunks", async () => {
    const big = new Uint8Array(3.5 * 0x100000);
    for (let i = 0; i < big.length; i += 4) new DataView(big.buffer).setUint32(i, (i * 2654435761) >>> 0, true);
    const bigPath = join(tmp, "big");
    writeFileSync(bigPath, big);
    const src = join(tmp, "src-dedup");
    Bun.spawnSync(["mkdir", "-p", src]);
    writeFileSync(join(src, "a"), big);
    writeFileSync(join(src, "b"), big);
    writeFileSync(join(src, "empty"), "");
    const tarPath = join(tmp, "dedup.tar");
    expect(Bun.spawnSync(["tar", "-C", src, "-cf", tarPath, "."]).exitCode).toBe(0);
    const { blob, result } = await buildFromTar(tarPath, { compressor: "zstd" });
    expect(result.blob.chunkCount).toBe(4);
    const img = RafsImage.open(buildImageBootstrap([result]));
    const tree = listTree(img);
    const a = tree.find((e) => e.path === "/a");
    const b = tree.find((e) => e.path === "/b");
    expect(a?.chunks.map((c) => c.ciIndex)).toEqual([0, 1, 2, 3]);
    expect(b?.chunks).toEqual(a?.chunks as never);
    expect(a?.nid).not.toBe(b?.nid);
    expect(tree.find((e) => e.path === "/empty")?.chunks).toEqual([]);
    const view = rafsView(img, blobAccess(img, new Map([[result.blob.blobId, blob]])));
    const want = new Bun.CryptoHasher("sha256").update(big).digest("hex");
    expect(view["/a"]?.sha256).toBe(want);
    expect(view["/b"]?.sha256).toBe(want);
    expect(view["/empty"]?.size).toBe(0);
    // Continuous chunks → chunk format covers the whole file (next power of two ≥ size).
    expect(img.chunkFormat(a?.inode as never).chunkBits).toBe(22);
  });

  test("compressor none is deterministic: same input, same blob and bootstrap bytes", async () => {
    const one = await buildFromTar(ALL, { compressor: "none", inlineBootstrap: false });
    const two = await buildFromTar(ALL, { compressor: "none", inlineBootstrap: false });
    expect(Buffer.from(one.blob)).toEqual(Buffer.from(two.blob));
    expect(Buffer.from(buildImageBootstrap([one.result]))).toEqual(Buffer.from(buildImageBootstrap([two.result])));
  });

  test("transient pieces (chunk buffer reused, whole chunks not copied) give the same blob and bootstrap", async () => {
    // Bodies in pieces of many sizes: chunks inside one piece, across pieces, and a tail.
    async function* split(list: { path: string; data: Uint8Array }[], step: number): AsyncGenerator<LayerEntry> {
      for (const [k, e] of list.entries()) {
        yield {
          header: {
            path: e.path,
            type: "file",
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: e.data.length,
            mtime: 1,
            linkname: "",
            devmajor: 0,
            devminor: 0,
            xattrs: {},
            offset: k * 512,
          },
          body: (async function* () {
            for (let o = 0; o < e.data.length; o += step) yield e.data.slice(o, o + step);
          })(),
        };
      }
    }
    const bytes = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * seed + (i >> 7)) & 0xff);
    const list = [
      { path: "a", data: bytes(3 * 0x1000 + 17, 7) },
      { path: "b", data: bytes(0x1000, 3) },
      { path: "c", data: bytes(5 * 0x1000, 7).subarray(0, 3 * 0x1000) }, // same chunks as a: deduplicated
      { path: "d", data: bytes(100, 5) },
    ];
    for (const step of [0x1000, 0x2800, 333, 1 << 20]) {
      const build = async (transientPieces: boolean) => {
        const b = buildLayer(split(list, step), { chunkSize: 0x1000, compressor: "zstd", transientPieces });
        const parts: Uint8Array[] = [];
        for await (const p of b.blob) parts.push(p.slice());
        return { blob: Buffer.concat(parts), boot: b.finish().bootstrap };
      };
      const [kept, transient] = [await build(false), await build(true)];
      expect(transient.blob.equals(kept.blob)).toBe(true);
      expect(Buffer.from(transient.boot).equals(Buffer.from(kept.boot))).toBe(true);
    }
  });

  test("storesData says exactly which entries LayerTreeBuilder.add returns an inode for", () => {
    const t = new LayerTreeBuilder();
    const h = (path: string, type: LayerEntry["header"]["type"], size = 0, linkname = ""): LayerEntry["header"] => ({
      path,
      type,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size,
      mtime: 0,
      linkname,
      devmajor: 0,
      devminor: 0,
      xattrs: {},
    });
    const cases = [
      h("", "dir"),
      h("d", "dir"),
      h("d/f", "file", 3),
      h("d/empty", "file", 0),
      h("stargz.index.json", "file", 9),
      h(".prefetch.landmark", "file", 9),
      h("d/stargz.index.json", "file", 9),
      h("./x/./y", "file", 1),
      h("d/l", "link", 0, "d/f"),
      h("d/s", "symlink", 0, "f"),
      h("d/c", "char"),
      h("d/p", "fifo"),
    ];
    for (const c of cases) expect([c.path, storesData(c)]).toEqual([c.path, t.add(c) !== undefined]);
  });

  test("streams: no piece is larger than a chunk plus its tail sections", async () => {
    const b = buildLayer(entries([{ path: "f", data: "x".repeat(20000) }]), { chunkSize: 0x1000, compressor: "none" });
    for await (const p of b.blob) expect(p.length).toBeLessThanOrEqual(0x4000);
    expect(b.finish().blob.chunkCount).toBe(2); // four identical 4 KiB chunks stored once, plus the tail
  });
});

describe("merge (reader view; the kernel check is in kernel.test.ts)", () => {
  test("opaque dir, whiteout, dir replaced by file, whiteouts never added, hard links stay per layer", async () => {
    const layer = async (list: Parameters<typeof entries>[0]) => {
      const b = buildLayer(entries(list), { compressor: "none" });
      const blob = await drain(b);
      return { blob, result: b.finish() };
    };
    const lower = await layer([
      { path: "o", type: "dir" },
      { path: "o/x", data: "x" },
      { path: "gone", data: "g" },
      { path: "d", type: "dir" },
      { path: "d/in", data: "in" },
      { path: "h1", data: "h" },
      { path: "h2", type: "link", linkname: "h1" },
      { path: ".wh.bottom", data: "" },
    ]);
    const upper = await layer([
      { path: "o/.wh..wh..opq", data: "" },
      { path: "o/y", data: "y" },
      { path: ".wh.gone", data: "" },
      { path: "d", data: "file now" },
      { path: "h1", data: "new" },
      { path: "n/.wh.z", data: "" },
      { path: "n/k", data: "k" },
    ]);
    const img = RafsImage.open(buildImageBootstrap([lower.result, upper.result]));
    const blobs = new Map([lower, upper].map((l) => [l.result.blob.blobId, l.blob]));
    const view = rafsView(img, blobAccess(img, blobs));
    expect(Object.keys(view).sort()).toEqual(["/", "/d", "/h1", "/h2", "/n", "/n/k", "/o", "/o/y"]);
    expect(view["/d"]?.size).toBe(8);
    expect(view["/h2"]?.linkGroup).toBeUndefined();
    expect(view["/h2"]?.sha256).toBe(new Bun.CryptoHasher("sha256").update("h").digest("hex"));
    expect(view["/n"]?.mode).toBe(0o40755); // synthesized parent
  });
});

describe("image-wide chunk dedup (buildImageBootstrap dedup)", () => {
  const layer = async (list: Parameters<typeof entries>[0]) => {
    const b = buildLayer(entries(list), { compressor: "none", chunkSize: 0x1000 });
    const blob = await drain(b);
    return { blob, result: b.finish() };
  };
  const big = "abcdefgh".repeat(1024); // two identical 4 KiB chunks
  const sha = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex");

  test("repeats of lower layers' chunks point at the lowest copy; a blob left unused drops out", async () => {
    const lower = await layer([
      { path: "a", data: big },
      { path: "gone", data: "only here" },
    ]);
    const middle = await layer([
      { path: "b", data: big },
      { path: ".wh.gone", data: "" },
      { path: "c", data: "only here" },
    ]);
    const upper = await layer([
      { path: "d", data: `${big}tail` },
      { path: "a", data: big },
    ]);
    const layers = [lower.result, middle.result, upper.result];
    const plain = RafsImage.open(buildImageBootstrap(layers));
    const img = RafsImage.open(buildImageBootstrap(layers, { dedup: true }));
    // Plain merge: first use in tree order (/a is the upper layer's now, /b and /c the middle's).
    expect(plain.blobs.map((b) => b.blobId)).toEqual([upper, middle].map((l) => l.result.blob.blobId));
    // Dedup: everything the middle layer holds repeats the lower one (even a deleted file's
    // content), so it drops out; /d's tail is only in the upper blob.
    expect(img.blobs.map((b) => b.blobId)).toEqual([lower.result.blob.blobId, upper.result.blob.blobId]);
    const blobs = new Map([lower, middle, upper].map((l) => [l.result.blob.blobId, l.blob]));
    const view = rafsView(img, blobAccess(img, blobs));
    expect(view["/a"]?.sha256).toBe(sha(big));
    expect(view["/b"]?.sha256).toBe(sha(big));
    expect(view["/c"]?.sha256).toBe(sha("only here"));
    expect(view["/d"]?.sha256).toBe(sha(`${big}tail`));
    expect(view["/gone"]).toBeUndefined();
    // The layer trees were not changed: without dedup the same layers give the plain image.
    expect(Buffer.from(buildImageBootstrap(layers))).toEqual(Buffer.from(plain.src.readAt(0, plain.src.size)));
  });
});

describe("bad input", () => {
  const kindOf = async (list: Parameters<typeof entries>[0]) => {
    try {
      await drain(buildLayer(entries(list)));
    } catch (e) {
      return e as RafsnapError;
    }
    throw new Error("no error");
  };

  test("hard link to a missing target is InvalidArgument naming both paths", async () => {
    const e = await kindOf([
      { path: "a", data: "1" },
      { path: "b", type: "link", linkname: "missing" },
    ]);
    expect(e).toBeInstanceOf(RafsnapError);
    expect(e.kind).toBe(ErrorKind.InvalidArgument);
    expect(e.message).toContain("/b");
    expect(e.message).toContain("/missing");
  });

  test("hard link to a directory or a later entry is rejected", async () => {
    expect(
      (
        await kindOf([
          { path: "d", type: "dir" },
          { path: "l", type: "link", linkname: "d" },
        ])
      ).kind,
    ).toBe(ErrorKind.InvalidArgument);
    expect(
      (
        await kindOf([
          { path: "l", type: "link", linkname: "f" },
          { path: "f", data: "x" },
        ])
      ).kind,
    ).toBe(ErrorKind.InvalidArgument);
  });

  test("a path below a regular file and an unstorable xattr are InvalidArgument", async () => {
    expect(
      (
        await kindOf([
          { path: "f", data: "x" },
          { path: "f/g", data: "y" },
        ])
      ).message,
    ).toContain("/f/g");
    const x = await kindOf([{ path: "f", data: "x", xattrs: { "foo.bar": new Uint8Array([1]) } }]);
    expect(x.kind).toBe(ErrorKind.InvalidArgument);
    expect(x.message).toContain("foo.bar");
  });

  test("finish() before the blob is consumed is FailedPrecondition", () => {
    expect(() => buildLayer(entries([])).finish()).toThrow(expect.objectContaining({ kind: ErrorKind.FailedPrecondition }));
  });

  test("chunk size must be a power of two in 4 KiB…16 MiB; gzip is NotImplemented", async () => {
    expect(() => buildLayer(entries([]), { chunkSize: 5000 })).toThrow(expect.objectContaining({ kind: ErrorKind.InvalidArgument }));
    expect(() => buildLayer(entries([]), { compressor: "gzip" })).toThrow(expect.objectContaining({ kind: ErrorKind.NotImplemented }));
  });
});
