import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { mountNoDTypeFs } from "../../test/harness/nodtype.ts";
import { checkDType } from "./dtype.ts";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "rafsnap-dtype-test-"));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;

describe("checkDType", () => {
  test("the usual filesystems report d_type, and the probe is removed", async () => {
    writeFileSync(join(root, "existing"), "x");
    expect(await checkDType(root)).toBe(true);
    expect(readdirSync(root)).toEqual(["existing"]);
  });

  test("works on an empty directory", async () => {
    expect(await checkDType(root)).toBe(true);
    expect(readdirSync(root)).toEqual([]);
  });

  test("a missing directory is NotFound", async () => {
    const err = await checkDType(join(root, "missing")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RafsnapError);
    expect((err as RafsnapError).kind).toBe(ErrorKind.NotFound);
  });

  test("a file instead of a directory is FailedPrecondition", async () => {
    writeFileSync(join(root, "file"), "x");
    const err = await checkDType(join(root, "file")).catch((e: unknown) => e);
    expect((err as RafsnapError).kind).toBe(ErrorKind.FailedPrecondition);
  });

  // ext2 without the `filetype` feature stores no type in directory entries, so the kernel
  // reports DT_UNKNOWN (while Bun's readdir withFileTypes would still show the real types).
  test.skipIf(!isRoot)("a filesystem without d_type is detected", async () => {
    const { mnt, unmount } = mountNoDTypeFs(root);
    try {
      expect(await checkDType(mnt)).toBe(false);
      expect(readdirSync(mnt).filter((n) => n.startsWith(".rafsnap-dtype-"))).toEqual([]);
    } finally {
      unmount();
    }
  });
});
