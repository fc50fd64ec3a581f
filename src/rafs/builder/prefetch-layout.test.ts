// --prefetch-files in the builder: the listed files' chunks come first and contiguous in the
// blob, the bootstrap's prefetch table lists them in list order, and the tree reads back the
// same as a build without the list. Through the real tar reader and the bootstrap reader.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTar } from "../../convert/tar.ts";
import { RafsImage } from "../image.ts";
import { PrefetchMatcher, parsePrefetchList } from "../prefetch-list.ts";
import { listTree } from "../tree.ts";
import { blobAccess, rafsView } from "../../../test/support/rafs-testing.ts";
import { buildImageBootstrap, buildLayer, type LayerBuildOptions } from "./index.ts";

const tmp = mkdtempSync(join(tmpdir(), "rafs-prefetch-layout-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A file of `n` bytes no other file shares a chunk with. */
function body(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7919 + (i >> 8)) & 0xff;
  return b;
}

async function build(tarPath: string, opts: LayerBuildOptions) {
  const b = buildLayer(readTar(Bun.file(tarPath).stream()), opts);
  const parts: Uint8Array[] = [];
  for await (const p of b.blob) parts.push(p);
  return { blob: Buffer.concat(parts), result: b.finish() };
}

test("listed files are laid out first and contiguous, listed in the prefetch table, and the tree reads back the same", async () => {
  const src = join(tmp, "src");
  mkdirSync(join(src, "etc/conf.d"), { recursive: true });
  mkdirSync(join(src, "usr/bin"), { recursive: true });
  // Tar order is alphabetical here; the listed files sit in the middle and at the end.
  const files: Record<string, number> = {
    "a-first": 9000,
    "etc/conf.d/x": 5000,
    "etc/conf.d/y": 300,
    "etc/passwd": 700,
    "m-middle": 20000,
    "usr/bin/app": 13000,
    "zz-last": 4000,
  };
  Object.entries(files).forEach(([p, n], i) => writeFileSync(join(src, p), body(i + 1, n)));
  const tarPath = join(tmp, "layer.tar");
  expect(Bun.spawnSync(["tar", "-C", src, "--sort=name", "-cf", tarPath, "."]).exitCode).toBe(0);

  const list = parsePrefetchList("/usr/bin/app\n# comment\n\n/etc/conf.d/\n/zz-last\n/not/there\n/usr/bin/app\n", "list");
  expect(list).toEqual(["/usr/bin/app", "/etc/conf.d", "/zz-last", "/not/there"]);
  const opts: LayerBuildOptions = { compressor: "zstd", chunkSize: 0x1000 };
  const plain = await build(tarPath, opts);
  const first = await build(tarPath, { ...opts, prefetchFirst: { matcher: new PrefetchMatcher(list), again: () => readTar(Bun.file(tarPath).stream()) } });

  const img = RafsImage.open(buildImageBootstrap([first.result], { prefetch: list }));
  const byNid = new Map(listTree(img).map((e) => [e.nid, e.path]));
  expect(img.prefetch.map((n) => byNid.get(n))).toEqual(["/usr/bin/app", "/etc/conf.d", "/zz-last"]);

  // Listed files (directories standing for what is below them) hold the lowest offsets,
  // compressed and uncompressed, with nothing of another file in between.
  const listed = new Set(["/usr/bin/app", "/etc/conf.d/x", "/etc/conf.d/y", "/zz-last"]);
  const spans = listTree(img)
    .filter((e) => e.chunks.length > 0)
    .flatMap((e) => e.chunks.map((c) => ({ path: e.path, t: img.chunkTableEntry(c) as NonNullable<ReturnType<typeof img.chunkTableEntry>> })));
  const lastListed = Math.max(...spans.filter((s) => listed.has(s.path)).map((s) => s.t.compressedOffset));
  const firstOther = Math.min(...spans.filter((s) => !listed.has(s.path)).map((s) => s.t.compressedOffset));
  expect(lastListed).toBeLessThan(firstOther);
  const listedBytes = spans.filter((s) => listed.has(s.path)).reduce((n, s) => n + s.t.compressedSize, 0);
  const listedEnd = Math.max(...spans.filter((s) => listed.has(s.path)).map((s) => s.t.compressedOffset + s.t.compressedSize));
  expect(Math.min(...spans.map((s) => s.t.compressedOffset))).toBe(0);
  expect(listedEnd).toBe(listedBytes); // one contiguous range from the blob's start
  // Within the working set, tar order is kept (the list's order is the prefetch table's).
  expect(spans.filter((s) => listed.has(s.path)).sort((a, b) => a.t.compressedOffset - b.t.compressedOffset)[0]?.path).toBe("/etc/conf.d/x");
  // The plain build has an unlisted file first: the test can tell the layouts apart.
  const plainImg = RafsImage.open(buildImageBootstrap([plain.result]));
  const plainFirst = listTree(plainImg).find((e) => e.chunks.some((c) => plainImg.chunkTableEntry(c)?.compressedOffset === 0));
  expect(plainFirst?.path).toBe("/a-first");
  expect(plainImg.prefetch).toEqual([plainImg.root().nid]);

  // Same tree, same contents.
  const view = rafsView(img, blobAccess(img, new Map([[first.result.blob.blobId, first.blob]])));
  const plainView = rafsView(plainImg, blobAccess(plainImg, new Map([[plain.result.blob.blobId, plain.blob]])));
  expect(view).toEqual(plainView);
  expect(view["/usr/bin/app"]?.sha256).toBe(new Bun.CryptoHasher("sha256").update(body(6, 13000)).digest("hex"));
});

test("a second pass that disagrees with the first is InvalidArgument", async () => {
  const src = join(tmp, "src2");
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, "a"), body(1, 5000));
  writeFileSync(join(src, "b"), body(2, 5000));
  const tarPath = join(tmp, "l2.tar");
  const other = join(tmp, "l2-other.tar");
  expect(Bun.spawnSync(["tar", "-C", src, "--sort=name", "-cf", tarPath, "./a", "./b"]).exitCode).toBe(0);
  expect(Bun.spawnSync(["tar", "-C", src, "--sort=name", "-cf", other, "./b", "./a"]).exitCode).toBe(0);
  const p = build(tarPath, { prefetchFirst: { matcher: new PrefetchMatcher(["/b"]), again: () => readTar(Bun.file(other).stream()) } });
  await expect(p).rejects.toThrow(/second pass over the layer found/);
});

test("list files: bad lines are errors naming the line; bounds hold", () => {
  expect(() => parsePrefetchList("/ok\nrelative/path\n", "f")).toThrow('f:2: "relative/path" is not an absolute path');
  expect(() => parsePrefetchList("/a/../etc/shadow\n", "f")).toThrow(/f:1: .* has a \. or \.\. component/);
  expect(() => parsePrefetchList(`/${"x".repeat(5000)}\n`, "f")).toThrow(/longer than 4096/);
  expect(() => parsePrefetchList(Array.from({ length: 70000 }, (_, i) => `/f${i}`).join("\n"), "f")).toThrow(/more than 65536 paths/);
  expect(parsePrefetchList("//usr//lib/\n/usr/lib\n", "f")).toEqual(["/usr/lib"]);
  const m = new PrefetchMatcher(["/usr/lib", "/bin/sh"]);
  expect([m.covers("usr/lib/x/y"), m.covers("./bin/sh"), m.covers("usr/libexec/z"), m.covers("bin")]).toEqual([true, true, false, false]);
});
