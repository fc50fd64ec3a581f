// Passing a descriptor and a state blob over a real unix socket with SCM_RIGHTS, both ends in
// worker threads of this process, as the supervisor and a daemon do across processes.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind, kindOf } from "../errdefs/index.ts";
import { fetchState, receiveState, sendState, Supervisor } from "./fdpass.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-fdpass-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const state = new Uint8Array(300_000).map((_, i) => (i * 13) & 0xff); // more than one message

test("save then restore: the successor gets the same open file and the same state", async () => {
  const file = join(dir, "f");
  writeFileSync(file, "the fuse device stands in here");
  const fd = openSync(file, "r");
  const sup = new Supervisor(join(dir, "sup.sock"));
  try {
    // save: the "daemon" answers sendfd by connecting and sending
    await sup.save(async () => {
      await Bun.sleep(50);
      await sendState(sup.path, { fd, state });
    });
    expect(sup.has()).toBe(true);
    // restore: the successor fetches what was saved
    let got: { fd: number; state: Uint8Array } | undefined;
    await sup.restore(async () => {
      await Bun.sleep(50);
      got = await fetchState(sup.path);
    });
    expect(got).toBeDefined();
    expect(Buffer.from(got?.state ?? []).equals(Buffer.from(state))).toBe(true);
    expect(fstatSync(got?.fd as number).ino).toBe(fstatSync(fd).ino);
    const buf = new Uint8Array(3);
    readSync(got?.fd as number, buf, 0, 3, 0);
    expect(new TextDecoder().decode(buf)).toBe("the");
    closeSync(got?.fd as number);
  } finally {
    sup.close();
    closeSync(fd);
  }
});

test("a supervisor nobody connects to gives up with Unavailable naming the socket", async () => {
  const path = join(dir, "lonely.sock");
  let err: unknown;
  try {
    await receiveState(path, 200);
  } catch (e) {
    err = e;
  }
  expect(kindOf(err)).toBe(ErrorKind.Unavailable);
  expect(String(err)).toContain(path);
  expect(String(err)).toContain("within 200 ms");
});
