import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type BlobBackend, localfsBackend, tieredBackend } from "./backend.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";

test("localfs reads <dir>/<id>, or the one blob_file whatever the id; past the end is an error", async () => {
  const want = new Uint8Array(readFileSync(join(FIX, ID))).subarray(100, 200);
  expect(await localfsBackend(FIX).read(ID, 100, 100)).toEqual(want);
  const other = "0".repeat(64);
  expect(await localfsBackend("/nonexistent", join(FIX, ID)).read(other, 100, 100)).toEqual(want);
  await expect(localfsBackend(FIX).read(ID, 14_500, 100)).rejects.toThrow("reaches past the end");
  await expect(localfsBackend(FIX).read("../etc", 0, 1)).rejects.toThrow("64 hex digits");
});

describe("tieredBackend (proxy → mirrors → origin)", () => {
  const bytes = new Uint8Array([1]);
  const endpoint = (name: string, ok: () => boolean) => {
    const calls: string[] = [];
    const backend: BlobBackend = {
      name,
      async read() {
        calls.push(name);
        if (!ok()) throw new Error(`${name} down`);
        return bytes;
      },
    };
    return { backend, calls };
  };

  test("falls over in order, skips a failed mirror for a while, never skips the origin", async () => {
    let mirrorUp = false;
    let t = 0;
    const m = endpoint("mirror", () => mirrorUp);
    const o = endpoint("origin", () => true);
    const logs: string[] = [];
    const b = tieredBackend(
      [
        { backend: m.backend, failureLimit: 2, skipMs: 1000, fallback: true },
        { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
      ],
      (x) => logs.push(x),
      () => t,
    );
    for (let i = 0; i < 3; i++) expect(await b.read("a".repeat(64), 0, 1)).toBe(bytes);
    // Two failures mark the mirror down; the third read goes straight to the origin.
    expect(m.calls.length).toBe(2);
    expect(o.calls.length).toBe(3);
    expect(logs[0]).toContain("mirror failed");
    mirrorUp = true;
    t = 2000; // skip period over
    await b.read("a".repeat(64), 0, 1);
    expect(m.calls.length).toBe(3);
    expect(o.calls.length).toBe(3);
  });

  test("a proxy without fallback fails the read; the origin's error is the one thrown", async () => {
    const p = endpoint("proxy", () => false);
    const o = endpoint("origin", () => false);
    const strict = tieredBackend([
      { backend: p.backend, failureLimit: 1, skipMs: 1000, fallback: false },
      { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
    ]);
    await expect(strict.read("a".repeat(64), 0, 1)).rejects.toThrow("proxy down");
    const lenient = tieredBackend([
      { backend: endpoint("proxy2", () => false).backend, failureLimit: 1, skipMs: 1000, fallback: true },
      { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
    ]);
    await expect(lenient.read("a".repeat(64), 0, 1)).rejects.toThrow("origin down");
  });
});
