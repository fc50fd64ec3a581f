// The new mount API path (root): an EROFS image with 60 blobs — more `device=` options than
// fit the one page mount(2) copies — mounts through fsconfig, one option per call, and every
// layer's file reads back. Blobs are built by our builder; the kernel is the referee.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blobAccess, buildFromTar, tarDir } from "../../test/support/rafs-testing.ts";
import { buildImageBootstrap, type LayerResult, RafsImage, uncompressedBlob } from "../rafs/index.ts";
import { fsMountReadonly } from "./fsmount.ts";
import { MAX_MOUNT_DATA, umount } from "./mount.ts";

const isRoot = process.getuid?.() === 0;
const LAYERS = 60;

describe.skipIf(!isRoot)("fsconfig mounts: EROFS with more blobs than one page of options", () => {
  let dir = "";
  let mnt = "";
  let devices: string[] = [];
  let boot = "";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-fsmount-"));
    const results: LayerResult[] = [];
    const blobs = new Map<string, Uint8Array>();
    for (let i = 0; i < LAYERS; i++) {
      const src = join(dir, `src-${i}`);
      mkdirSync(src);
      writeFileSync(join(src, `layer-${i}.txt`), `content of layer ${i}\n`);
      tarDir(src, join(dir, `l${i}.tar`));
      const { blob, result } = await buildFromTar(join(dir, `l${i}.tar`), { compressor: "none" });
      results.push(result);
      blobs.set(result.blob.blobId, blob);
    }
    const bootBytes = buildImageBootstrap(results);
    boot = join(dir, "image.boot");
    writeFileSync(boot, bootBytes);
    const img = RafsImage.open(bootBytes);
    const access = blobAccess(img, blobs);
    // Long directory names make the option string long, as real cache paths are.
    const devDir = join(dir, "blob-cache-directory-with-a-long-name-like-real-roots");
    mkdirSync(devDir);
    devices = img.blobs.map((b, i) => {
      const p = join(devDir, `${b.blobId}.blob.data`);
      writeFileSync(p, uncompressedBlob(access(i)));
      return p;
    });
    mnt = join(dir, "mnt");
    mkdirSync(mnt);
  }, 60_000);

  afterAll(() => {
    try {
      umount(mnt);
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  });

  test("the options would not fit mount(2); fsconfig mounts them and every layer reads back", () => {
    expect(devices.length).toBe(LAYERS);
    expect(Buffer.byteLength(devices.map((d) => `device=${d}`).join(","))).toBeGreaterThan(MAX_MOUNT_DATA);
    fsMountReadonly(
      "erofs",
      boot,
      mnt,
      devices.map((d) => ["device", d]),
    );
    for (let i = 0; i < LAYERS; i++) expect(readFileSync(join(mnt, `layer-${i}.txt`), "utf8")).toBe(`content of layer ${i}\n`);
    umount(mnt);
  });

  test("a device the image does not name is refused with the step and errno, and nothing is mounted", () => {
    let err: unknown;
    try {
      fsMountReadonly(
        "erofs",
        boot,
        mnt,
        devices.slice(1).map((d) => ["device", d]),
      );
    } catch (e) {
      err = e;
    }
    expect(String(err)).toMatch(/fsconfig create: errno \d+/);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(mnt);
  });
});

describe.skipIf(!isRoot)("mountErofs over loop devices (kernels without file-backed EROFS)", () => {
  const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
  const BLOB_ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";

  test("file-backed with a 512 KiB read-ahead; forced loop mode mounts the real nydus fixture and its loop devices go away with the mount", async () => {
    const { mountErofs } = await import("./erofs.ts");
    const { bytesSource, readBlobMeta, readChunkDigests } = await import("../rafs/index.ts");
    const d = mkdtempSync(join(tmpdir(), "rafsnap-loop-"));
    const target = join(d, "mnt");
    mkdirSync(target);
    try {
      const bootPath = join(FIX, "rafs-v6-2.2.boot");
      const img = RafsImage.open(new Uint8Array(readFileSync(bootPath)));
      const src = bytesSource(new Uint8Array(readFileSync(join(FIX, BLOB_ID))));
      const blob = img.blobs[0] as (typeof img.blobs)[number];
      const dev = join(d, `${BLOB_ID}.blob.data`);
      writeFileSync(dev, uncompressedBlob({ blob, src, chunks: readBlobMeta(src, blob).chunks, digests: readChunkDigests(src, blob) }));
      const file = await mountErofs(bootPath, target, [dev]);
      expect(file.via).toBe("file");
      const { fsSysfsPath } = await import("./readahead.ts");
      const name = fsSysfsPath(target)?.split("/").pop();
      expect(name).toMatch(/^erofs-?\d*|^\d+:\d+$/);
      expect(readFileSync(`/sys/class/bdi/${name}/read_ahead_kb`, "utf8").trim()).toBe("512");
      umount(target);
      const m = await mountErofs(bootPath, target, [dev], true);
      expect(m.via).toBe("loop");
      expect(m.loops.length).toBe(2);
      const mi =
        readFileSync("/proc/self/mountinfo", "utf8")
          .split("\n")
          .find((l) => l.split(" ")[4] === target) ?? "";
      expect(mi).toContain(" - erofs /dev/loop");
      expect(readdirSync(target).length).toBeGreaterThan(0);
      umount(target);
      // Detached right after mounting: the kernel freed them with the mount.
      const left = Bun.spawnSync(["losetup", "-j", dev]).stdout.toString();
      expect(left.trim()).toBe("");
    } finally {
      try {
        umount(target);
      } catch {}
      rmSync(d, { recursive: true, force: true });
    }
  });
});
