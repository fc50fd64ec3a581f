// FuseSplicer against a pipe standing in for /dev/fuse: header + spliced file bytes in one
// message, nothing left behind after a declined reply.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { ptr } from "bun:ffi";
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FuseSplicer, SpliceResult } from "./splice.ts";
import { readerSys } from "./sys.ts";

const sys = readerSys();
let dir: string;
let file: number;
let out: [number, number];
const data = new Uint8Array(300_000).map((_, i) => (i * 13 + 1) & 0xff);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-splice-"));
  writeFileSync(join(dir, "f"), data);
  file = openSync(join(dir, "f"), "r");
  const fds = new Int32Array(2);
  if (sys.pipe2(ptr(fds), 0) !== 0) throw new Error("pipe2");
  out = [fds[0] as number, fds[1] as number];
  sys.fcntl(out[1], 1031, 1 << 20); // F_SETPIPE_SZ: room for a whole reply
});
afterEach(() => {
  for (const fd of [file, ...out]) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

function readMessage(n: number): Uint8Array {
  const b = new Uint8Array(n);
  let got = 0;
  while (got < n) got += readSync(out[0], b, got, n - got, null);
  return b;
}

test("a reply is the out header (length, no error, unique) followed by the file's bytes", () => {
  const s = new FuseSplicer(sys, out[1], 16 + 256 * 1024);
  const unique = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  expect(s.fits(4096, 128 * 1024)).toBe(true);
  expect(s.fits(0, 512 * 1024)).toBe(false); // longer than the largest reply
  expect(s.reply(unique, file, 4096 + 5, 131072)).toBe(SpliceResult.SENT);
  const m = readMessage(16 + 131072);
  const v = new DataView(m.buffer);
  expect(v.getUint32(0, true)).toBe(16 + 131072);
  expect(v.getInt32(4, true)).toBe(0);
  expect(m.subarray(8, 16)).toEqual(unique);
  expect(m.subarray(16)).toEqual(data.subarray(4101, 4101 + 131072));
  s.close();
});

test("a file shorter than asked declines and leaves nothing in the pipe", () => {
  const s = new FuseSplicer(sys, out[1], 16 + 256 * 1024);
  const unique = new Uint8Array(8).fill(9);
  expect(s.reply(unique, file, data.length - 100, 4096)).toBe(SpliceResult.DECLINED);
  expect(s.reply(unique, file, 0, 10)).toBe(SpliceResult.SENT);
  const m = readMessage(26);
  expect(new DataView(m.buffer).getUint32(0, true)).toBe(26);
  expect(m.subarray(16)).toEqual(data.subarray(0, 10));
  s.close();
});
