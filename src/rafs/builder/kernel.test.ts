// Kernel as referee (root only): build from GNU tar of real directories, mount the bootstrap
// with EROFS (file-backed device= per blob, each holding the blob's uncompressed address space
// produced by the reader) and compare the mounted tree with the source — and with the reader.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MountFlags, mount, umount } from "../../mount/index.ts";
import { uncompressedBlob } from "../file.ts";
import { RafsImage } from "../image.ts";
import { buildImageBootstrap, type LayerResult } from "./index.ts";
import { blobAccess, buildFromTar, diskView, rafsView, tarDir, type PathView } from "../../../test/support/rafs-testing.ts";

const isRoot = process.getuid?.() === 0;
const sh = (...args: string[]) => {
  const r = Bun.spawnSync(args);
  if (r.exitCode !== 0) throw new Error(`${args.join(" ")}: ${r.stderr.toString()}`);
};

/** Mounts `boot` with one device per blob of the image, runs `fn` on the mount point, always unmounts. */
function withMount<T>(dir: string, boot: Uint8Array, blobs: ReadonlyMap<string, Uint8Array>, fn: (mnt: string) => T): T {
  const img = RafsImage.open(boot);
  const access = blobAccess(img, blobs);
  const bootPath = join(dir, "image.boot");
  writeFileSync(bootPath, boot);
  const devs = img.blobs.map((b, i) => {
    const p = join(dir, `${b.blobId}.blob.data`);
    writeFileSync(p, uncompressedBlob(access(i)));
    return p;
  });
  const mnt = join(dir, "mnt");
  mkdirSync(mnt, { recursive: true });
  mount(bootPath, mnt, "erofs", MountFlags.MS_RDONLY, devs.map((d) => `device=${d}`).join(","));
  try {
    return fn(mnt);
  } finally {
    umount(mnt);
  }
}

/** The rich single-layer source tree. */
function makeSource(src: string): void {
  const w = (p: string, data: string | Uint8Array, mode = 0o644) => {
    writeFileSync(join(src, p), data);
    chmodSync(join(src, p), mode);
  };
  for (const d of ["small", "hl/sub", "dev", "xdir", "ünïcödé", "sticky"]) mkdirSync(join(src, d), { recursive: true });
  const big = new Uint8Array(3.5 * 0x100000);
  for (let i = 0; i < big.length; i += 4) new DataView(big.buffer).setUint32(i, (i * 2654435761) >>> 0, true);
  big.fill(7, 0x100000, 0x200000); // one highly compressible chunk
  w("big.bin", big);
  w("big-copy.bin", big);
  w("empty", "");
  for (let i = 0; i < 1500; i++) w(`small/f${String(i).padStart(4, "0")}`, i % 10 === 0 ? "same content\n" : `file ${i}\n`);
  let deep = "deep";
  for (let i = 0; i < 40; i++) deep += `/d${i}`;
  mkdirSync(join(src, deep), { recursive: true });
  w(`${deep}/leaf.txt`, "deep leaf\n");
  w("a".repeat(255), "long name\n");
  mkdirSync(join(src, "b".repeat(255)));
  w(`${"b".repeat(255)}/${"c".repeat(255)}`, "long/long\n");
  w("ünïcödé/日本語.txt", "utf-8\n");
  w("ünïcödé/😀-emoji", "emoji\n");
  w("hl/a", "linked\n", 0o600);
  linkSync(join(src, "hl/a"), join(src, "hl/b"));
  linkSync(join(src, "hl/a"), join(src, "hl/sub/c"));
  symlinkSync("big.bin", join(src, "sym"));
  symlinkSync("/does/not/exist", join(src, "dangling"));
  symlinkSync("t".repeat(300), join(src, "longsym"));
  sh("mknod", join(src, "dev/char"), "c", "240", "17");
  sh("mknod", join(src, "dev/blk"), "b", "7", "300");
  sh("mkfifo", join(src, "dev/fifo"));
  w("setuid", "#!/bin/sh\n", 0o4755);
  chmodSync(join(src, "sticky"), 0o1777);
  w("owned", "owned\n", 0o640);
  chownSync(join(src, "owned"), 1234, 5678);
  chownSync(join(src, "xdir"), 70000, 70001);
  w("xattr.txt", "x\n");
  sh("setfattr", "-n", "user.foo", "-v", "bar", join(src, "xattr.txt"));
  sh("setfattr", "-n", "trusted.t", "-v", "0x0102ff", join(src, "xattr.txt"));
  sh("setfattr", "-n", "user.dir", "-v", "d", join(src, "xdir"));
  utimesSync(join(src, "owned"), 1_000_000_000, 1_000_000_000);
}

describe.skipIf(!isRoot)("kernel EROFS mounts what the builder makes (root)", () => {
  let tmp = "";
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "rafs-kernel-"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  for (const compressor of ["zstd", "none", "lz4_block"] as const) {
    test(`single layer (${compressor}): mounted tree = source = reader`, async () => {
      const dir = join(tmp, `single-${compressor}`);
      const src = join(dir, "src");
      mkdirSync(src, { recursive: true });
      makeSource(src);
      tarDir(src, join(dir, "layer.tar"));
      const { blob, result } = await buildFromTar(join(dir, "layer.tar"), { compressor });
      const boot = buildImageBootstrap([result]);
      const blobs = new Map([[result.blob.blobId, blob]]);
      const want = diskView(src, true);
      expect(Object.keys(want).length).toBeGreaterThan(1550);
      const img = RafsImage.open(boot);
      expect(rafsView(img, blobAccess(img, blobs))).toEqual(want);
      const got = withMount(dir, boot, blobs, (mnt) => diskView(mnt, true));
      expect(got).toEqual(want);
      expect(got["/hl/b"]?.linkGroup).toBe("/hl/a");
      expect(got["/dev/blk"]?.rdev).toBe("7:300");
      expect(got["/xattr.txt"]?.xattrs).toEqual({ "trusted.t": "0102ff", "user.foo": "626172" });
    }, 60_000);
  }

  test("a layer of 10,000 small files: mounted tree = source = reader", async () => {
    const dir = join(tmp, "many");
    const src = join(dir, "src");
    for (let d = 0; d < 100; d++) {
      mkdirSync(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(src, `d${d}`, `f${f}`), f % 7 === 0 ? "same\n" : `file ${d}/${f}\n`);
    }
    tarDir(src, join(dir, "layer.tar"));
    const { blob, result } = await buildFromTar(join(dir, "layer.tar"), { compressor: "zstd" });
    const boot = buildImageBootstrap([result]);
    const blobs = new Map([[result.blob.blobId, blob]]);
    const want = diskView(src, false);
    expect(Object.keys(want).length).toBe(10_000 + 100 + 1);
    const img = RafsImage.open(boot);
    expect(rafsView(img, blobAccess(img, blobs))).toEqual(want);
    expect(withMount(dir, boot, blobs, (mnt) => diskView(mnt, false))).toEqual(want);
  }, 120_000);

  test("nydus's all-entry-type.tar: mounted tree = GNU tar's extraction of the same tar", async () => {
    const dir = join(tmp, "all-entry");
    const tar = join(import.meta.dir, "../../../../shared/fixtures/rafs/all-entry-type.tar");
    const ref = join(dir, "ref");
    mkdirSync(ref, { recursive: true });
    sh("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner", "-p", "-C", ref, "-xf", tar);
    const { blob, result } = await buildFromTar(tar, { compressor: "zstd" });
    const boot = buildImageBootstrap([result]);
    const blobs = new Map([[result.blob.blobId, blob]]);
    const want = diskView(ref, true);
    const got = withMount(dir, boot, blobs, (mnt) => diskView(mnt, true));
    // The extraction directory itself gets tar's root entry only if the tar has one.
    delete (want as Record<string, unknown>)["/"];
    delete (got as Record<string, unknown>)["/"];
    // Linux ignores a symlink's permission bits and creates every symlink 0777; the image keeps
    // the tar header's bits, as nydus-image does. Compare symlinks by type only.
    for (const v of [...Object.values(want), ...Object.values(got)]) if (v.symlink !== undefined) v.mode = (v.mode & 0o170000) | 0o777;
    expect(got).toEqual(want);
    expect(Object.keys(want).length).toBeGreaterThan(3);
  }, 60_000);

  test("four layers merged: whiteouts, opaque dir, replaced file/dir, hard links per layer", async () => {
    const dir = join(tmp, "multi");
    const L = [1, 2, 3, 4].map((i) => join(dir, `l${i}`));
    for (const l of L) mkdirSync(l, { recursive: true });
    const [l1, l2, l3, l4] = L as [string, string, string, string];
    const put = (root: string, p: string, data = "") => {
      mkdirSync(join(root, p, ".."), { recursive: true });
      writeFileSync(join(root, p), data);
    };
    // Layer 1.
    put(l1, "etc/conf", "v1");
    put(l1, "etc/keep", "keep");
    put(l1, "data/a", "a");
    put(l1, "data/sub/b", "b");
    put(l1, "opq/x", "x");
    put(l1, "opq/y/z", "z");
    put(l1, "gone", "gone");
    put(l1, "dir2file/inner", "inner");
    put(l1, "hl1", "shared");
    linkSync(join(l1, "hl1"), join(l1, "hl2"));
    put(l1, "l1only", "l1");
    // Layer 2: replace, whiteout, opaque, dir → file, break a hard-link group.
    put(l2, "etc/conf", "v2");
    put(l2, "etc/.wh.keep");
    put(l2, "opq/.wh..wh..opq");
    put(l2, "opq/new", "new");
    put(l2, ".wh.gone");
    put(l2, "dir2file", "now a file");
    put(l2, "data/c", "c");
    linkSync(join(l2, "data/c"), join(l2, "data/c-link"));
    put(l2, "hl1", "replaced");
    // Layer 3: directory metadata from the upper layer, new dir with a stray whiteout, symlink over a file.
    put(l3, "data/sub/d", "d");
    chmodSync(join(l3, "data/sub"), 0o700);
    put(l3, "newdir/.wh.phantom");
    put(l3, "newdir/real", "real");
    symlinkSync("/etc/conf", join(l3, "conflink"));
    // Layer 4: no file data at all (its blob must be dropped from the image).
    put(l4, ".wh.l1only");
    mkdirSync(join(l4, "emptydir"));

    const results: LayerResult[] = [];
    const blobs = new Map<string, Uint8Array>();
    for (const [i, l] of L.entries()) {
      tarDir(l, join(dir, `l${i + 1}.tar`));
      const { blob, result } = await buildFromTar(join(dir, `l${i + 1}.tar`), { compressor: "zstd" });
      results.push(result);
      blobs.set(result.blob.blobId, blob);
    }
    const boot = buildImageBootstrap(results);
    const img = RafsImage.open(boot);
    // First use in a breadth-first walk: /dir2file (layer 2) comes before /hl2 (layer 1), then
    // /data/sub/d (layer 3); layer 4 has no chunks and is left out.
    expect(img.blobs.map((b) => b.blobId)).toEqual([1, 0, 2].map((i) => results[i]?.blob.blobId as string));

    // Expected overlay result, by hand: extract each layer in order without its whiteouts,
    // after removing what the layer's whiteouts and replacements remove.
    const exp = join(dir, "expected");
    mkdirSync(exp);
    const extract = (l: string) => sh("sh", "-c", `tar --numeric-owner -C '${l}' --exclude='.wh.*' -cf - . | tar --numeric-owner -C '${exp}' -xpf -`);
    extract(l1);
    for (const p of ["etc/keep", "gone", "hl1"]) rmSync(join(exp, p));
    rmSync(join(exp, "dir2file"), { recursive: true });
    for (const p of ["opq/x", "opq/y"]) rmSync(join(exp, p), { recursive: true });
    extract(l2);
    extract(l3);
    rmSync(join(exp, "l1only"));
    extract(l4);

    const want = diskView(exp, true);
    expect(Object.keys(want).sort()).toEqual(
      [
        "/",
        "/conflink",
        "/data",
        "/data/a",
        "/data/c",
        "/data/c-link",
        "/data/sub",
        "/data/sub/b",
        "/data/sub/d",
        "/dir2file",
        "/emptydir",
        "/etc",
        "/etc/conf",
        "/hl1",
        "/hl2",
        "/newdir",
        "/newdir/real",
        "/opq",
        "/opq/new",
      ].sort(),
    );
    const ours = rafsView(img, blobAccess(img, blobs));
    expect(ours).toEqual(want);
    const got = withMount(dir, boot, blobs, (mnt) => diskView(mnt, true));
    expect(got).toEqual(want);
    expect((got["/data/sub"] as PathView).mode & 0o7777).toBe(0o700);
    expect(got["/data/c-link"]?.linkGroup).toBe("/data/c");
    expect(got["/hl2"]?.linkGroup).toBeUndefined();
  }, 60_000);

  test("image-wide dedup: files repeated in an upper layer read through the kernel from the lower blob", async () => {
    const dir = join(tmp, "dedup");
    const [l1, l2] = [1, 2].map((i) => join(dir, `l${i}`)) as [string, string];
    const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
    mkdirSync(join(l1, "data"), { recursive: true });
    mkdirSync(join(l2, "data"), { recursive: true });
    writeFileSync(join(l1, "data/a"), content);
    writeFileSync(join(l2, "data/copy"), content);
    writeFileSync(join(l2, "data/new"), "only in layer 2");
    const results: LayerResult[] = [];
    const blobs = new Map<string, Uint8Array>();
    for (const [i, l] of [l1, l2].entries()) {
      tarDir(l, join(dir, `l${i + 1}.tar`));
      const { blob, result } = await buildFromTar(join(dir, `l${i + 1}.tar`), { compressor: "zstd" });
      results.push(result);
      blobs.set(result.blob.blobId, blob);
    }
    const boot = buildImageBootstrap(results, { dedup: true });
    const img = RafsImage.open(boot);
    const lower = img.blobs.findIndex((b) => b.blobId === results[0]?.blob.blobId);
    expect(img.chunks(img.lookup("/data/copy")).map((c) => c.blobIndex)).toEqual([lower]);
    expect(img.chunks(img.lookup("/data/new")).map((c) => c.blobIndex)).toEqual([1 - lower]);
    const exp = join(dir, "expected");
    mkdirSync(exp);
    for (const l of [l1, l2]) sh("sh", "-c", `tar --numeric-owner -C '${l}' -cf - . | tar --numeric-owner -C '${exp}' -xpf -`);
    const want = diskView(exp, true);
    expect(withMount(dir, boot, blobs, (mnt) => diskView(mnt, true))).toEqual(want);
  }, 60_000);
});
