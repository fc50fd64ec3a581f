import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorKind, kindOf } from "../errdefs/index.ts";
import { decompressLayer, detectCompression } from "./layer.ts";
import { readTar } from "./tar.ts";

const TAR = new Uint8Array(readFileSync(join(import.meta.dir, "../../../shared/fixtures/rafs/all-entry-type.tar")));
const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
async function* chunks(b: Uint8Array, n = 1000) {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}
async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}
async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected failure");
}

describe("decompressLayer", () => {
  const gz = Bun.gzipSync(TAR);
  const zst = Bun.zstdCompressSync(TAR);

  test("gzip, zstd and plain tar give the same bytes and pass digest and diff_id checks", async () => {
    expect([detectCompression(gz), detectCompression(zst), detectCompression(TAR)]).toEqual(["gzip", "zstd", "none"]);
    for (const blob of [gz, zst, TAR]) {
      const out = await collect(decompressLayer(chunks(blob), { what: "layer", digest: sha(blob), diffId: sha(TAR) }));
      expect(out.equals(Buffer.from(TAR))).toBe(true);
    }
    // and it feeds the tar reader as a stream
    let n = 0;
    for await (const _ of readTar(decompressLayer(chunks(gz, 64), { what: "layer" }))) n++;
    expect(n).toBeGreaterThan(5);
  });

  test("digest mismatch, diff_id mismatch, truncated gzip and empty blob are InvalidArgument naming the layer", async () => {
    const wrong = `sha256:${"1".repeat(64)}`;
    const d = await failure(collect(decompressLayer(chunks(gz), { what: "layer L1", digest: wrong })));
    expect(kindOf(d)).toBe(ErrorKind.InvalidArgument);
    expect(String(d)).toContain("layer L1");
    expect(String(d)).toContain(wrong);
    const diff = await failure(collect(decompressLayer(chunks(gz), { what: "layer L2", diffId: wrong })));
    expect(String(diff)).toContain("diff_id");
    const cut = await failure(collect(decompressLayer(chunks(gz.subarray(0, gz.length - 40)), { what: "layer L3" })));
    expect(kindOf(cut)).toBe(ErrorKind.InvalidArgument);
    expect(String(cut)).toContain("layer L3: gzip stream is corrupt or truncated");
    // A tar reader stops at the end-of-archive blocks; it must still run the stream to its
    // end, or a lying diff_id would go unnoticed.
    const early = await failure(
      (async () => {
        for await (const e of readTar(decompressLayer(chunks(gz), { what: "layer L5", diffId: wrong })))
          for await (const _ of e.body) {
            /* drain */
          }
      })(),
    );
    expect(String(early)).toContain("layer L5");
    const empty = await failure(collect(decompressLayer(chunks(new Uint8Array(0)), { what: "layer L4" })));
    expect(String(empty)).toContain("layer L4: empty blob");
  });
});
