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
      [
        "bad checksum",
        (() => {
          const h = header("a");
          h[0] = 0x62;
          return archive(h);
        })(),
        "checksum mismatch",
      ],
      ["truncated body", Buffer.concat([header("a", { size: 5000 }), new Uint8Array(1000)]), "truncated"],
      [
        "bad octal",
        (() => {
          const h = header("a");
          h.set(new TextEncoder().encode("9"), 124);
          return archive(h);
        })(),
        "checksum",
      ],
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

  test("hostile archives are refused at their caps (negative sizes, long names, PAX and xattr floods)", async () => {
    const pax = (type: "x" | "g", records: [string, string][]) => {
      const body = Buffer.concat(
        records.map(([k, v]) => {
          const rest = ` ${k}=${v}\n`;
          let len = Buffer.byteLength(rest) + 1;
          while (String(len).length + Buffer.byteLength(rest) !== len) len++;
          return Buffer.from(`${len}${rest}`);
        }),
      );
      const padded = Buffer.concat([body, new Uint8Array((512 - (body.length % 512)) % 512)]);
      return Buffer.concat([header("pax", { type, size: body.length }), padded]);
    };
    const fails = async (bytes: Uint8Array, msg: string) => {
      let err: unknown;
      try {
        await entries(bytes);
      } catch (e) {
        err = e;
      }
      expect(kindOf(err)).toBe(ErrorKind.InvalidArgument);
      expect(String(err)).toContain(msg);
    };
    await fails(archive(pax("x", [["size", "-1"]]), header("f")), 'size="-1" is not a number');
    await fails(archive(pax("x", [["uid", "1e99"]]), header("f")), "uid=");
    await fails(archive(pax("x", [["path", `d/${"n".repeat(256)}`]]), header("f")), "a name is longer than 255 bytes");
    await fails(archive(pax("x", [["linkpath", "x".repeat(5000)]]), header("l", { type: "2" })), "link target longer");
    // Global records apply to every later entry: capped, and never copied per entry.
    const globals = Array.from({ length: 65 }, (_, i) => [`SCHILY.xattr.user.g${i}`, "v"] as [string, string]);
    await fails(archive(pax("g", globals)), "more than 64 global PAX records");
    const many = Array.from({ length: 129 }, (_, i) => [`SCHILY.xattr.user.x${i}`, "v"] as [string, string]);
    await fails(archive(pax("x", many), header("f")), "extended attributes over the limits");
    await fails(archive(pax("x", [["SCHILY.xattr.user.big", "v".repeat(70_000)]]), header("f")), "extended attributes over the limits");
    // Within the caps: 60 global xattrs on 20,000 entries read fast.
    const ok = Array.from({ length: 60 }, (_, i) => [`SCHILY.xattr.user.g${i}`, "v"] as [string, string]);
    const got = await entries(archive(pax("g", ok), ...Array.from({ length: 20_000 }, (_, i) => header(`f${i}`))));
    expect(got.length).toBe(20_000);
    expect(Object.keys(got[19_999]?.h.xattrs ?? {}).length).toBe(60);
  });
});
