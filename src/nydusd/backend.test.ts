import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { localfsBackend } from "./backend.ts";

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
