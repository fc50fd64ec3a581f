// Inline and shared xattr decoding on a hand-built inode area (no fixture carries xattrs).
import { expect, test } from "bun:test";
import { bytesSource, readXattrs, type Inode, type Superblock } from "./index.ts";

const sb = { blockSize: 4096, xattrBlkaddr: 1 } as Superblock;
const enc = (s: string) => [...new TextEncoder().encode(s)];
const entry = (index: number, name: string, value: string) => {
  const e = [name.length, index, value.length & 0xff, value.length >> 8, ...enc(name), ...enc(value)];
  while (e.length % 4) e.push(0);
  return e;
};

function image(area: number[], shared: number[] = []) {
  const b = new Uint8Array(8192);
  b.set(shared, 4096); // shared xattr area at block 1
  b.set(area, 64 + 64); // after a 64-byte extended inode at 64
  const inode = { nid: 2, offset: 64, inodeSize: 64, xattrSize: area.length, xattrIcount: (area.length - 12) / 4 + 1 } as Inode;
  return { src: bytesSource(b), inode };
}

test("inline entries with every prefix, and a shared entry", () => {
  const header = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]; // one shared id = 2 → 4096 + 8
  const area = [
    ...header,
    ...entry(1, "mime", "text/plain"),
    ...entry(2, "", "acl!"),
    ...entry(4, "overlay.opaque", "y"),
    ...entry(6, "capability", "\u0001\u0002"),
  ];
  const { src, inode } = image(area, [0, 0, 0, 0, 0, 0, 0, 0, ...entry(1, "shared", "v")]);
  const got = readXattrs(src, sb, inode).map((x) => [x.name, new TextDecoder().decode(x.value), x.shared]);
  expect(got).toEqual([
    ["user.shared", "v", true],
    ["user.mime", "text/plain", false],
    ["system.posix_acl_access", "acl!", false],
    ["trusted.overlay.opaque", "y", false],
    ["security.capability", "\u0001\u0002", false],
  ]);
});

test("an entry running past the area and an unknown prefix index are named", () => {
  const long = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 200, 0, ...enc("name")];
  const a = image(long);
  expect(() => readXattrs(a.src, sb, a.inode)).toThrow(/inode\[2\]\.xattr\.e_name_len at offset 140: entry of 208 bytes runs past/);
  const b = image([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...entry(0x85, "x", "y")]);
  expect(() => readXattrs(b.src, sb, b.inode)).toThrow(/e_name_index at offset 141: unsupported name index 133/);
  const c = image([0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
  expect(() => readXattrs(c.src, sb, c.inode)).toThrow(/h_shared_count/);
});
