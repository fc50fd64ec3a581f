import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blobCachesIn, blobIdOfCacheFile, removeCacheFiles } from "./chunk-map.ts";

describe("cache file names (§8)", () => {
  test("suffixes are stripped to the blob id; other names are ids as they stand", () => {
    const id = "a".repeat(64);
    for (const s of [".blob.data", ".chunk_map", ".blob.data.chunk_map", ".blob.meta", ".image.disk", ".layer.disk", ""]) {
      expect(blobIdOfCacheFile(id + s)).toBe(id);
    }
  });
  test("a directory's files are grouped by blob (directories left out) and removed", () => {
    const dir = mkdtempSync(join(tmpdir(), "rafsnap-cache-names-"));
    try {
      const a = "a".repeat(64);
      const b = "b".repeat(64);
      for (const n of [`${a}.blob.data`, `${a}.chunk_map`, `${a}.blob.meta`, `${b}.blob.data.chunk_map`, `${b}.image.disk`, "stray"])
        writeFileSync(join(dir, n), "");
      mkdirSync(join(dir, "subdir"));
      const byBlob = blobCachesIn(dir);
      expect([...byBlob.keys()].sort()).toEqual([a, b, "stray"]);
      expect(byBlob.get(a)?.sort()).toEqual([`${a}.blob.data`, `${a}.blob.meta`, `${a}.chunk_map`]);
      removeCacheFiles(dir, byBlob.get(a) ?? []);
      removeCacheFiles(dir, byBlob.get(b) ?? []);
      expect(readdirSync(dir).sort()).toEqual(["stray", "subdir"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
