import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind } from "../errdefs/index.ts";
import { fdPath, LayerFileError, openBeneath, openRegular, readBeneath } from "./beneath.ts";

const dir = mkdtempSync(join(tmpdir(), "beneath-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, "fs");
mkdirSync(join(root, "image"), { recursive: true });
writeFileSync(join(root, "image", "image.boot"), "bootstrap");
writeFileSync(join(dir, "secret"), "host secret of 27 bytes....");
symlinkSync(join(dir, "secret"), join(root, "abs-link"));
symlinkSync("image.boot", join(root, "image", "rel-link"));
symlinkSync("../secret", join(root, "up-link"));
symlinkSync(join(root, "image"), join(root, "dir-link"));
symlinkSync("/dev/zero", join(root, "zero"));
execFileSync("mkfifo", [join(root, "fifo")]);

function reason(rel: string, max = 1 << 20): string {
  try {
    closeSync(openBeneath(root, rel, "image x bootstrap", max).fd);
    return "opened";
  } catch (e) {
    if (!(e instanceof LayerFileError)) throw e;
    // Never what lies behind the path.
    expect(e.message).not.toContain("27");
    expect(e.message).not.toContain("secret of");
    return e.reason;
  }
}

describe("openBeneath: files of a layer", () => {
  test("a regular file beneath the root is read", () => {
    expect(new TextDecoder().decode(readBeneath(root, "image/image.boot", "b", 100))).toBe("bootstrap");
    expect(new TextDecoder().decode(readBeneath(root, "image/image.boot", "b", 100, 4))).toBe("boot");
  });
  test("a symlink anywhere on the path is refused, whatever it points at", () => {
    expect(reason("abs-link")).toBe("link");
    expect(reason("image/rel-link")).toBe("link");
    expect(reason("up-link")).toBe("link");
    expect(reason("dir-link/image.boot")).toBe("link");
    expect(reason("zero")).toBe("link");
    expect(reason("../secret")).toBe("link");
    expect(reason("/etc/passwd")).toBe("link");
  });
  test("a FIFO or a directory is refused without blocking", () => {
    expect(reason("fifo")).toBe("not-regular");
    expect(reason("image")).toBe("not-regular");
  });
  test("size cap and missing files", () => {
    expect(reason("image/image.boot", 8)).toBe("too-large");
    expect(reason("image/nope")).toBe("missing");
    try {
      openBeneath(root, "image/nope", "b", 1);
    } catch (e) {
      expect((e as LayerFileError).kind).toBe(ErrorKind.NotFound);
    }
    try {
      openBeneath(root, "abs-link", "b", 1);
    } catch (e) {
      expect((e as LayerFileError).kind).toBe(ErrorKind.FailedPrecondition);
    }
  });
  test.skipIf(process.getuid?.() !== 0)("a device node is refused without being opened for I/O (root)", () => {
    execFileSync("mknod", [join(root, "null"), "c", "1", "3"]);
    expect(reason("null")).toBe("not-regular");
  });
});

describe("openRegular: operator-given paths", () => {
  test("follows a link to a regular file, refuses special files, caps size", () => {
    const f = openRegular(join(root, "image", "rel-link"), "b", 100);
    expect(readFileSync(fdPath(f.fd), "utf8")).toBe("bootstrap");
    closeSync(f.fd);
    expect(() => openRegular("/dev/zero", "b", 100)).toThrow(/is not a regular file/);
    expect(() => openRegular(join(root, "fifo"), "b", 100)).toThrow(/is not a regular file/);
    expect(() => openRegular(join(root, "image", "image.boot"), "b", 3)).toThrow(/larger than the 3-byte limit/);
  });
});
