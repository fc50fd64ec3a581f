import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, kindOf } from "../errdefs/index.ts";
import { readTar, type TarHeader } from "./tar.ts";

const FIXTURE = join(import.meta.dir, "../../../shared/fixtures/rafs/all-entry-type.tar");
const isRoot = process.getuid?.() === 0;

async function* chunked(b: Uint8Array, size = 777): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function entries(b: Uint8Array): Promise<{ h: TarHeader; data: Buffer }[]> {
  const out: { h: TarHeader; data: Buffer }[] = [];
  for await (const e of readTar(chunked(b))) {
    const parts: Uint8Array[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({ h: e.header, data: Buffer.concat(parts) });
  }
  return out;
}

/** A minimal ustar header for crafted (malicious) archives. */
function header(name: string, opts: { type?: string; size?: number; linkname?: string } = {}): Uint8Array {
  const h = new Uint8Array(512);
  const put = (s: string, off: number) => h.set(new TextEncoder().encode(s), off);
  put(name, 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  put(`${(opts.size ?? 0).toString(8).padStart(11, "0")}\0`, 124);
  put("00000000000\0", 136);
  put(opts.type ?? "0", 156);
  if (opts.linkname) put(opts.linkname, 157);
  put("ustar\0", 257);
  put("00", 263);
  put("        ", 148);
  const sum = h.reduce((a, b) => a + b, 0);
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

function archive(...parts: Uint8Array[]): Uint8Array {
  return Buffer.concat([...parts, new Uint8Array(1024)]);
}

describe("readTar", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-tar-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the nydus fixture all-entry-type.tar: dirs, a file, hard links, a dangling symlink", async () => {
    const list = await entries(readFileSync(FIXTURE));
    const byPath = new Map(list.map((e) => [e.h.path, e]));
    const files = list.filter((e) => e.h.type === "file");
    expect(files).toHaveLength(1);
    expect(files[0]?.h.size).toBe(15);
    expect(files[0]?.data.length).toBe(15);
    const links = list.filter((e) => e.h.type === "link");
    expect(links).toHaveLength(3);
    for (const l of links) expect(byPath.get(l.h.linkname)?.h.type).toBe("file");
    expect(list.filter((e) => e.h.type === "symlink")).toHaveLength(1);
  });

  test("GNU tar output: long names and link targets, PAX xattrs, hard links, symlinks, fifos, devices", async () => {
    const src = join(dir, "src");
    const long = `${"d".repeat(120)}/${"f".repeat(200)}`;
    mkdirSync(join(src, "d".repeat(120)), { recursive: true });
    writeFileSync(join(src, long), "long\n");
    writeFileSync(join(src, "big"), Buffer.alloc(70_000, 7));
    linkSync(join(src, "big"), join(src, "big-link"));
    symlinkSync(`/${"t".repeat(150)}`, join(src, "longsym"));
    writeFileSync(join(src, "x"), "x");
    expect(Bun.spawnSync(["setfattr", "-n", "user.k", "-v", "v1", join(src, "x")]).exitCode).toBe(0);
    expect(Bun.spawnSync(["mkfifo", join(src, "fifo")]).exitCode).toBe(0);
    if (isRoot) expect(Bun.spawnSync(["mknod", join(src, "null"), "c", "1", "3"]).exitCode).toBe(0);
    const out = join(dir, "t.tar");
    const r = Bun.spawnSync(["tar", "--xattrs", "--xattrs-include=user.*", "--format=pax", "-C", src, "-cf", out, "."]);
    expect(r.exitCode).toBe(0);
    const list = await entries(readFileSync(out));
    const by = new Map(list.map((e) => [e.h.path, e]));
    expect(by.get(long)?.data.toString()).toBe("long\n");
    // whichever of the two names tar met first holds the data; the other links to it
    const [first, second] = by.get("big")?.h.type === "file" ? ["big", "big-link"] : ["big-link", "big"];
    expect(by.get(first)?.data.equals(Buffer.alloc(70_000, 7))).toBe(true);
    expect(by.get(second)?.h).toMatchObject({ type: "link", linkname: first, size: 0 });
    expect(by.get("longsym")?.h).toMatchObject({ type: "symlink", linkname: `/${"t".repeat(150)}` });
    expect(Buffer.from(by.get("x")?.h.xattrs["user.k"] ?? []).toString()).toBe("v1");
    expect(by.get("fifo")?.h.type).toBe("fifo");
    if (isRoot) expect(by.get("null")?.h).toMatchObject({ type: "char", devmajor: 1, devminor: 3 });
    expect(by.has("")).toBe(true); // the root "./" entry, normalised
    // GNU format long names (././@LongLink) as well
    const gnu = join(dir, "g.tar");
    expect(Bun.spawnSync(["tar", "--format=gnu", "-C", src, "-cf", gnu, "."]).exitCode).toBe(0);
    const g = new Map((await entries(readFileSync(gnu))).map((e) => [e.h.path, e]));
    expect(g.get(long)?.data.toString()).toBe("long\n");
    expect(g.get("longsym")?.h.linkname).toBe(`/${"t".repeat(150)}`);
  });

  test("bodies left unread are skipped", async () => {
    const tar = archive(header("a", { size: 1000 }), new Uint8Array(1024).fill(1), header("b", { size: 3 }), new Uint8Array(512).fill(2));
    const paths: string[] = [];
    for await (const e of readTar(chunked(tar, 100))) paths.push(e.header.path);
    expect(paths).toEqual(["a", "b"]);
  });

  test("malicious or broken archives fail naming the offset", async () => {
    const cases: [string, Uint8Array, string][] = [
      ["escaping path", archive(header("../../etc/passwd")), "escapes the layer root"],
      ["escaping hard link", archive(header("ok", { type: "1", linkname: "../x" })), "escapes the layer root"],
      ["bad checksum", (() => { const h = header("a"); h[0] = 0x62; return archive(h); })(), "checksum mismatch"],
      ["truncated body", Buffer.concat([header("a", { size: 5000 }), new Uint8Array(1000)]), "truncated"],
      ["bad octal", (() => { const h = header("a"); h.set(new TextEncoder().encode("9"), 124); return archive(h); })(), "checksum"],
    ];
    for (const [name, bytes, msg] of cases) {
      let err: unknown;
      try {
        await entries(bytes);
      } catch (e) {
        err = e;
      }
      expect({ name, kind: kindOf(err) }).toEqual({ name, kind: ErrorKind.InvalidArgument });
      expect(String(err)).toContain(msg);
    }
    // "/abs" is taken as relative to the root, like tar and containerd do
    expect((await entries(archive(header("/abs/file"))))[0]?.h.path).toBe("abs/file");
    // ".." that stays inside the root is resolved
    expect((await entries(archive(header("a/../b"))))[0]?.h.path).toBe("b");
  });
});
