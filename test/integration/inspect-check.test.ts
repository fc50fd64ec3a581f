// `rafsnap inspect` and `rafsnap check` (compiled binary) on the nydus fixtures and on
// corrupted copies of them.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFromTar, tarDir } from "../support/rafs-testing.ts";
import { rafsnapCli } from "../support/rafsnap.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const BOOT = join(FIX, "rafs-v6-2.2.boot");
const ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-check-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("inspect shows the superblock, the blob and the tree", async () => {
  const r = await rafsnapCli(["inspect", BOOT]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("magic 0xe0f5e1e2");
  expect(r.stdout).toContain(`[0] ${ID}`);
  expect(r.stdout).toMatch(/-0644 \d+:\d+ +16931 nid +133 \/lib\.rs/);
  expect(r.stdout).toMatch(/ +13400 nid +136 \/sync_io\.rs/);
});

test("check passes the fixture with its blob and reads every file", async () => {
  const r = await rafsnapCli(["check", BOOT, "--blobs", FIX]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toBe("ok: 3 paths, 1 blobs, 2 chunks verified, 30331 bytes of files read\n");
});

test("check fails a blob with a flipped byte in a chunk, naming blob and chunk", async () => {
  const blobs = join(dir, "blobs");
  mkdirSync(blobs);
  const bytes = readFileSync(join(FIX, ID));
  bytes[100] = (bytes[100] as number) ^ 0xff; // inside chunk 0's zstd frame [0, 4828)
  writeFileSync(join(blobs, ID), bytes);
  const r = await rafsnapCli(["check", BOOT, "--blobs", blobs]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(`blob ${ID} chunk 0`);
});

test("check fails a bootstrap with a forged inode size, naming the field", async () => {
  const boot = readFileSync(BOOT);
  // /lib.rs is nid 133: its inode is at meta_blkaddr (2) × 4096 + nid × 32, and an extended
  // inode keeps i_size as a u64 at +8.
  const off = 2 * 4096 + 133 * 32 + 8;
  boot.writeBigUInt64LE(1n << 40n, off);
  const forged = join(dir, "forged.boot");
  writeFileSync(forged, boot);
  copyFileSync(join(FIX, ID), join(dir, ID));
  const r = await rafsnapCli(["check", forged, "--blobs", dir]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/rafsnap: .*(size|chunk)/);
});

test("inspect escapes control characters of names from the image (no terminal escape reaches stdout)", async () => {
  const src = join(dir, "evil-tree");
  mkdirSync(src);
  const evil = "a\x1b]0;pwned\x07b\x9bc";
  writeFileSync(join(src, evil), "x");
  symlinkSync("\x1b[2J", join(src, "link"));
  const tar = join(dir, "evil.tar");
  tarDir(src, tar);
  const { result } = await buildFromTar(tar);
  const boot = join(dir, "evil.boot");
  writeFileSync(boot, result.bootstrap);
  const r = await rafsnapCli(["inspect", boot]);
  expect(r.code).toBe(0);
  expect(r.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  expect(r.stdout).toContain("a\\x1b]0;pwned\\x07b\\x9bc");
  expect(r.stdout).toContain("-> \\x1b[2J");
});
