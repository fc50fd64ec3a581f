// tree-compare on small trees: equal copies give no differences, and every kind of change
// (content, mode, owner, symlink target, hard links, xattr, device, missing/extra path, type)
// is reported with both values. Owner and device cases need root (the suite runs as root).
import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useCleanup } from "../harness/cleanup.ts";
import { compareManifests, compareTrees, pathMatcher, treeManifest } from "./tree-compare.ts";

const isRoot = process.getuid?.() === 0;
const sha = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex");

function sh(...cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}`);
}

/** A tree with one of each: file, dir, symlink, hard-link pair, setuid file, xattr, fifo, device. */
function makeTree(root: string): void {
  mkdirSync(join(root, "etc/sub"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  writeFileSync(join(root, "etc/sub/data"), "0123456789");
  writeFileSync(join(root, "tool"), "#!/bin/sh\n");
  chmodSync(join(root, "tool"), 0o755);
  writeFileSync(join(root, "hl-a"), "shared inode\n");
  linkSync(join(root, "hl-a"), join(root, "hl-b"));
  symlinkSync("etc/passwd", join(root, "link"));
  writeFileSync(join(root, "attr"), "with an xattr\n");
  sh("setfattr", "-n", "user.rafsnap", "-v", "yes", join(root, "attr"));
  sh("mkfifo", join(root, "fifo"));
  if (isRoot) sh("mknod", join(root, "null"), "c", "1", "3");
}

describe("tree-compare", () => {
  const cleanup = useCleanup();
  const base = cleanup.tempDir("rafsnap-treecmp-");
  const src = join(base, "src");
  mkdirSync(src);
  makeTree(src);
  let copies = 0;
  /** A fresh `cp -a` copy of the source tree (hard links, xattrs, modes, owners kept). */
  const copy = () => {
    const dst = join(base, `copy-${++copies}`);
    sh("cp", "-a", src, dst);
    return dst;
  };

  test("the manifest records every field", async () => {
    const m = await treeManifest(src);
    expect(m.get("/")?.type).toBe("dir");
    expect(m.get("/etc/sub/data")).toMatchObject({ type: "file", size: 10, sha256: sha("0123456789"), xattrs: {} });
    expect(m.get("/tool")?.mode).toBe(0o755);
    expect(m.get("/link")).toMatchObject({ type: "symlink", target: "etc/passwd" });
    expect(m.get("/hl-a")?.links).toEqual(["/hl-a", "/hl-b"]);
    expect(m.get("/hl-b")?.links).toEqual(["/hl-a", "/hl-b"]);
    expect(m.get("/etc/passwd")?.links).toBeUndefined();
    expect(m.get("/attr")?.xattrs).toEqual({ "user.rafsnap": Buffer.from("yes").toString("hex") });
    expect(m.get("/fifo")?.type).toBe("fifo");
    if (isRoot) expect(m.get("/null")).toMatchObject({ type: "char", rdev: "1:3" });
    // Parents come before children (walk order).
    const keys = [...m.keys()];
    expect(keys.indexOf("/etc")).toBeLessThan(keys.indexOf("/etc/sub/data"));
  });

  test("a copy is equal; one source manifest serves several comparisons", async () => {
    const m = await treeManifest(src);
    expect(compareManifests(m, await treeManifest(copy()))).toEqual([]);
    expect(compareManifests(m, await treeManifest(copy()))).toEqual([]);
    expect(await compareTrees(src, copy())).toEqual([]);
  });

  test("content: same size, other bytes", async () => {
    const d = copy();
    writeFileSync(join(d, "etc/sub/data"), "0123456780");
    expect(await compareTrees(src, d)).toEqual([`/etc/sub/data: sha256 expected ${sha("0123456789")}, got ${sha("0123456780")}`]);
  });

  test("size and content", async () => {
    const d = copy();
    writeFileSync(join(d, "etc/sub/data"), "01234");
    expect(await compareTrees(src, d)).toEqual([
      "/etc/sub/data: size expected 10, got 5",
      `/etc/sub/data: sha256 expected ${sha("0123456789")}, got ${sha("01234")}`,
    ]);
  });

  test("mode, including setuid, setgid and sticky", async () => {
    const d = copy();
    chmodSync(join(d, "tool"), 0o4755);
    chmodSync(join(d, "etc"), 0o2755);
    chmodSync(join(d, "etc/sub"), 0o1777);
    expect(await compareTrees(src, d)).toEqual([
      "/etc: mode expected 0755, got 2755",
      "/etc/sub: mode expected 0755, got 1777",
      "/tool: mode expected 0755, got 4755",
    ]);
  });

  test.skipIf(!isRoot)("owner: uid and gid", async () => {
    const d = copy();
    chownSync(join(d, "etc/passwd"), 1000, 0);
    chownSync(join(d, "tool"), 0, 42);
    expect(await compareTrees(src, d)).toEqual(["/etc/passwd: uid expected 0, got 1000", "/tool: gid expected 0, got 42"]);
  });

  test("symlink target (never followed)", async () => {
    const d = copy();
    unlinkSync(join(d, "link"));
    symlinkSync("etc/sub/data", join(d, "link"));
    expect(await compareTrees(src, d)).toEqual(["/link: symlink target expected etc/passwd, got etc/sub/data"]);
  });

  test("hard-link group: split, and a new member", async () => {
    const split = copy();
    // Same content, mode and owner, but hl-b becomes its own inode.
    writeFileSync(join(split, "hl-b.new"), "shared inode\n");
    renameSync(join(split, "hl-b.new"), join(split, "hl-b"));
    expect(await compareTrees(src, split)).toEqual([
      "/hl-a: hard links expected [/hl-a, /hl-b], got (none)",
      "/hl-b: hard links expected [/hl-a, /hl-b], got (none)",
    ]);
    const grown = copy();
    unlinkSync(join(grown, "etc/passwd"));
    linkSync(join(grown, "hl-a"), join(grown, "etc/passwd"));
    const diffs = await compareTrees(src, grown);
    expect(diffs).toContain("/hl-a: hard links expected [/hl-a, /hl-b], got [/etc/passwd, /hl-a, /hl-b]");
    expect(diffs).toContain("/etc/passwd: hard links expected (none), got [/etc/passwd, /hl-a, /hl-b]");
  });

  test("xattrs: changed value, added name, removed name", async () => {
    const d = copy();
    sh("setfattr", "-n", "user.rafsnap", "-v", "no", join(d, "attr"));
    sh("setfattr", "-n", "user.extra", "-v", "1", join(d, "tool"));
    sh("setfattr", "-x", "user.rafsnap", join(d, "attr"));
    sh("setfattr", "-n", "user.rafsnap", "-v", "no", join(d, "etc"));
    const hex = (s: string) => `0x${Buffer.from(s).toString("hex")}`;
    expect(await compareTrees(src, d)).toEqual([
      `/attr: xattr user.rafsnap expected ${hex("yes")}, got (none)`,
      `/etc: xattr user.rafsnap expected (none), got ${hex("no")}`,
      `/tool: xattr user.extra expected (none), got ${hex("1")}`,
    ]);
    const changed = copy();
    sh("setfattr", "-n", "user.rafsnap", "-v", "no", join(changed, "attr"));
    expect(await compareTrees(src, changed)).toEqual([`/attr: xattr user.rafsnap expected ${hex("yes")}, got ${hex("no")}`]);
  });

  test("missing and extra paths", async () => {
    const d = copy();
    rmSync(join(d, "etc/sub"), { recursive: true });
    writeFileSync(join(d, "new"), "");
    expect(await compareTrees(src, d)).toEqual(["/etc/sub: missing (expected dir)", "/etc/sub/data: missing (expected file)", "/new: unexpected file"]);
  });

  test("type: a file becomes a directory, a fifo a file", async () => {
    const d = copy();
    unlinkSync(join(d, "tool"));
    mkdirSync(join(d, "tool"), { mode: 0o755 });
    unlinkSync(join(d, "fifo"));
    writeFileSync(join(d, "fifo"), "");
    expect(await compareTrees(src, d)).toEqual(["/fifo: type expected fifo, got file", "/tool: type expected file, got dir"]);
  });

  test.skipIf(!isRoot)("device number", async () => {
    const d = copy();
    unlinkSync(join(d, "null"));
    sh("mknod", join(d, "null"), "c", "1", "5");
    expect(await compareTrees(src, d)).toEqual(["/null: rdev expected 1:3, got 1:5"]);
  });

  test("ignore: a subtree, a pattern, and hard-link groups shrink with it", async () => {
    const d = copy();
    writeFileSync(join(d, "etc/sub/extra"), "x");
    unlinkSync(join(d, "hl-b"));
    writeFileSync(join(d, "tmp-file"), "x");
    expect(await compareTrees(src, d, { ignore: ["/etc/sub", /^\/tmp-/, (p) => p === "/hl-b"] })).toEqual([]);
    // Without the ignore list, all three show up.
    expect(await compareTrees(src, d)).toEqual([
      "/etc/sub/extra: unexpected file",
      "/hl-a: hard links expected [/hl-a, /hl-b], got (none)",
      "/hl-b: missing (expected file)",
      "/tmp-file: unexpected file",
    ]);
    const m = pathMatcher(["/etc/sub"]);
    expect([m("/etc/sub"), m("/etc/sub/x"), m("/etc/subway"), m("/etc")]).toEqual([true, true, false, false]);
  });

  test("mtimes are not compared", async () => {
    const d = copy();
    sh("touch", "-h", "-d", "@0", join(d, "etc"), join(d, "etc/passwd"), join(d, "link"));
    expect(await compareTrees(src, d)).toEqual([]);
  });
});
