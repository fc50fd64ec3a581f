// Kernel as referee: mount the fixture bootstrap with EROFS (file-backed, device=<the blob's
// uncompressed address space written by this reader>) and compare the kernel's tree with ours.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MountFlags, mount, umount } from "../mount/index.ts";
import {
  RafsImage,
  bytesSource,
  isReg,
  isSymlink,
  listTree,
  readBlobMeta,
  readChunkDigests,
  readFile,
  sha256Hex,
  uncompressedBlob,
  type BlobAccess,
} from "./index.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const BLOB_ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("kernel EROFS cross-check (root)", () => {
  let dir = "";
  let mnt = "";
  let mounted = false;
  const bootPath = join(FIX, "rafs-v6-2.2.boot");
  const image = RafsImage.open(new Uint8Array(readFileSync(bootPath)));
  const blobSrc = bytesSource(new Uint8Array(readFileSync(join(FIX, BLOB_ID))));
  const blob = image.blobs[0]!;
  const access = (): BlobAccess => ({ blob, src: blobSrc, chunks: readBlobMeta(blobSrc, blob).chunks, digests: readChunkDigests(blobSrc, blob) });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-erofs-"));
    mnt = join(dir, "mnt");
    mkdirSync(mnt);
    const dev = join(dir, `${BLOB_ID}.blob.data`);
    writeFileSync(dev, uncompressedBlob(access()));
    mount(bootPath, mnt, "erofs", MountFlags.MS_RDONLY, `device=${dev}`);
    mounted = true;
  });

  afterAll(() => {
    try {
      if (mounted) umount(mnt);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("same paths, modes, ids, sizes, nlinks, mtimes, symlinks and file contents", () => {
    const kernel: Record<string, unknown>[] = [];
    const visit = (rel: string) => {
      const p = rel === "/" ? mnt : join(mnt, rel);
      const st = lstatSync(p);
      kernel.push({ path: rel, mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink, mtime: Math.floor(st.mtimeMs / 1000), ino: st.ino });
      if (st.isSymbolicLink()) kernel.at(-1)!.symlink = readlinkSync(p);
      if (st.isFile()) kernel.at(-1)!.sha256 = sha256Hex(readFileSync(p));
      if (st.isDirectory()) for (const n of readdirSync(p).sort()) visit(rel === "/" ? `/${n}` : `${rel}/${n}`);
    };
    visit("/");
    const ours = listTree(image).map((e) => {
      const o: Record<string, unknown> = {
        path: e.path,
        mode: e.inode.mode,
        uid: e.inode.uid,
        gid: e.inode.gid,
        size: e.inode.size,
        nlink: e.inode.nlink,
        mtime: e.inode.mtime,
        ino: e.nid,
      };
      if (isSymlink(e.inode.mode)) o.symlink = e.symlink;
      if (isReg(e.inode.mode)) o.sha256 = sha256Hex(readFile(image, e.inode, access));
      return o;
    });
    expect(kernel).toEqual(ours);
    expect(kernel).toHaveLength(3);
  });
});
