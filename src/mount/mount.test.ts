// mount(2)/umount2(2) through bun:ffi: errno → RafsnapError kinds naming the target.
// (The successful EROFS mount is exercised by src/rafs/kernel.test.ts.)
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MountFlags, mount, umount } from "./mount.ts";

const isRoot = process.getuid?.() === 0;

describe("mount errors", () => {
  test("umount of a directory that is not a mount point is NotFound naming it (root) or PermissionDenied", () => {
    const d = mkdtempSync(join(tmpdir(), "rafsnap-umount-"));
    try {
      expect(() => umount(d)).toThrow(isRoot ? `umount ${d}: not a mount point` : `umount ${d}: EPERM`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test.skipIf(!isRoot)("an unknown filesystem type is NotImplemented (ENODEV)", () => {
    const d = mkdtempSync(join(tmpdir(), "rafsnap-mount-"));
    try {
      let err: unknown;
      try {
        mount("none", d, "no-such-fs-type", MountFlags.MS_RDONLY, null);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ kind: "not-implemented", message: `mount no-such-fs-type none on ${d}: ENODEV` });
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("mount data longer than one page is refused before the syscall", () => {
    expect(() => mount("/x", "/y", "erofs", 0, "device=".padEnd(5000, "a"))).toThrow(/exceeds 4095/);
  });
});
