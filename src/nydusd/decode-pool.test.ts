import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zstdCompressSync } from "node:zlib";
import { blake3 } from "@noble/hashes/blake3.js";
import type { ChunkInfo } from "../rafs/index.ts";
import { DecodeError, DecodePool } from "./decode-pool.ts";

const dir = mkdtempSync(join(tmpdir(), "rafsnap-decode-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Three chunks of 64 KiB, zstd-compressed back to back; their chunk infos and digests. */
function sample() {
  const plain = [0, 1, 2].map((i) => Uint8Array.from({ length: 65536 }, (_, k) => (k * (i + 3)) & 0xff));
  const packed = plain.map((p) => new Uint8Array(zstdCompressSync(p)));
  const data = new Uint8Array(packed.reduce((n, p) => n + p.length, 0));
  let at = 0;
  const chunks: ChunkInfo[] = packed.map((p, i) => {
    data.set(p, at);
    const c = {
      ciIndex: i,
      compressedOffset: 1000 + at,
      compressedSize: p.length,
      uncompressedOffset: i * 65536,
      uncompressedSize: 65536,
      compressed: true,
      flags: 0,
      data: 0n,
    };
    at += p.length;
    return c;
  });
  return { plain, data, chunks, digests: plain.map((p) => hex(blake3(p))) };
}

describe("DecodePool", () => {
  const blob = { blobId: "ab".repeat(32), compressor: "zstd" as const, digester: "blake3" as const };

  test("decodes, verifies and writes chunks at their uncompressed offsets", async () => {
    const pool = new DecodePool(1);
    const path = join(dir, "ok.data");
    const fd = openSync(path, "w+");
    try {
      const s = sample();
      const written = await pool.decode({ blob, fd, data: s.data, base: 1000, chunks: s.chunks, digests: s.digests });
      expect(written).toEqual([0, 1, 2]);
      expect(hex(readFileSync(path))).toBe(hex(Buffer.concat(s.plain)));
    } finally {
      pool.close();
      closeSync(fd);
    }
  });

  test("a digest mismatch stops the job naming blob and chunk; the chunks before it are reported written", async () => {
    const pool = new DecodePool(1);
    const fd = openSync(join(dir, "bad.data"), "w+");
    try {
      const s = sample();
      s.digests[1] = "00".repeat(32);
      const err = await pool.decode({ blob, fd, data: s.data, base: 1000, chunks: s.chunks, digests: s.digests }).catch((e) => e);
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).written).toEqual([0]);
      expect((err as Error).message).toContain(`blob ${blob.blobId} chunk 1`);
      expect((err as Error).message).toContain("digest mismatch");
    } finally {
      pool.close();
      closeSync(fd);
    }
  });

  test("jobs after close are refused; jobs of several callers all complete", async () => {
    const pool = new DecodePool(2);
    const fds = [0, 1, 2, 3].map((i) => openSync(join(dir, `many-${i}.data`), "w+"));
    try {
      const results = await Promise.all(
        fds.map((fd) => {
          const s = sample();
          return pool.decode({ blob, fd, data: s.data, base: 1000, chunks: s.chunks, digests: s.digests });
        }),
      );
      expect(results).toEqual([0, 1, 2, 3].map(() => [0, 1, 2]));
    } finally {
      pool.close();
      for (const fd of fds) closeSync(fd);
    }
    const s = sample();
    await expect(pool.decode({ blob, fd: 0, data: s.data, base: 1000, chunks: s.chunks, digests: s.digests })).rejects.toThrow("closed");
  });
});
