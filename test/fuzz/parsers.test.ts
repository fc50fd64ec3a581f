// A mutation fuzz pass over the parsers that read hostile input: RAFS bootstraps (opened and
// walked, every inode's xattrs, link target and chunk list read), `.blob.meta` files (alone
// and against a blob table entry), tar streams, and OCI manifests, indexes and configs. Real
// seeds (the nydus fixtures, a bootstrap our builder made, a real manifest shape) are mutated
// by a seeded PRNG — bit flips, interesting integers, truncations, spliced and zeroed ranges,
// and for JSON, values swapped for other types — a fixed number of times each, within a time
// budget. Every outcome must be a result or a RafsnapError with a kind: never a TypeError,
// RangeError or stack overflow, which would reach containerd as "unknown" (or crash a daemon).
// The seed is printed; RAFSNAP_FUZZ_SEED and RAFSNAP_FUZZ_ROUNDS replay or extend a run.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseImageConfig, parseIndex, parseManifest } from "../../src/convert/oci.ts";
import { readTar } from "../../src/convert/tar.ts";
import { RafsnapError } from "../../src/errdefs/index.ts";
import { type BlobEntry, bytesSource, parseBlobMetaFile, RafsImage, walkTree } from "../../src/rafs/index.ts";
import { buildFromTar } from "../support/rafs-testing.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const SEED = Number(process.env.RAFSNAP_FUZZ_SEED ?? Date.now() % 2 ** 31);
const ROUNDS = Number(process.env.RAFSNAP_FUZZ_ROUNDS ?? 20_000);
/** Each target stops early after this long: the pass is bounded in time whatever the machine. */
const BUDGET_MS = 20_000;
console.log(`[fuzz] seed ${SEED}, ${ROUNDS} rounds per target (replay: RAFSNAP_FUZZ_SEED=${SEED})`);

/** mulberry32: small, fast, seedable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 4096, 4095];

/** 1–8 random mutations of a copy of `seed`. */
function mutate(seed: Uint8Array, rnd: () => number): Uint8Array {
  let b = new Uint8Array(seed);
  const at = () => Math.floor(rnd() * Math.max(1, b.length));
  const n = 1 + Math.floor(rnd() * 8);
  for (let i = 0; i < n; i++) {
    const op = Math.floor(rnd() * 6);
    if (b.length === 0) break;
    if (op === 0) {
      const p = at();
      b[p] = (b[p] as number) ^ (1 << Math.floor(rnd() * 8));
    } else if (op === 1) {
      b[at()] = INTERESTING[Math.floor(rnd() * INTERESTING.length)] as number & 0xff;
    } else if (op === 2) {
      const p = at() & ~3;
      const v = INTERESTING[Math.floor(rnd() * INTERESTING.length)] as number;
      if (p + 4 <= b.length) new DataView(b.buffer).setUint32(p, v >>> 0, true);
    } else if (op === 3) {
      b = b.slice(0, at());
    } else if (op === 4) {
      const from = at();
      const len = Math.min(Math.floor(rnd() * 512), b.length - from);
      const to = at();
      const piece = b.slice(from, from + len);
      b.set(piece.subarray(0, Math.max(0, Math.min(piece.length, b.length - to))), to);
    } else {
      const p = at();
      b.fill(0, p, Math.min(b.length, p + Math.floor(rnd() * 64)));
    }
  }
  return b;
}

/** Runs `fn` on mutations of the seeds; returns the non-RafsnapError failures. */
async function fuzz(name: string, seeds: Uint8Array[], fn: (b: Uint8Array) => unknown | Promise<unknown>, offset: number): Promise<string[]> {
  const rnd = prng(SEED + offset);
  const bad: string[] = [];
  const t0 = performance.now();
  let ran = 0;
  let accepted = 0;
  for (let i = 0; i < ROUNDS && performance.now() - t0 < BUDGET_MS; i++, ran++) {
    const input = mutate(seeds[i % seeds.length] as Uint8Array, rnd);
    try {
      await fn(input);
      accepted++;
    } catch (e) {
      if (!(e instanceof RafsnapError)) bad.push(`${name} round ${i}: ${(e as Error)?.name}: ${String((e as Error)?.message).slice(0, 200)}`);
    }
  }
  console.log(`[fuzz] ${name}: ${ran} inputs in ${Math.round(performance.now() - t0)} ms, ${accepted} accepted, ${bad.length} bad`);
  return bad;
}

/** Everything a daemon or `check` reads from a bootstrap. */
function openAndWalk(b: Uint8Array): void {
  const image = RafsImage.open(b);
  let n = 0;
  for (const e of walkTree(image)) {
    void e.chunks.length;
    if (++n > 100_000) break;
  }
  for (const blob of image.blobs) void blob.blobId;
}

async function readAll(b: Uint8Array): Promise<void> {
  async function* src() {
    for (let i = 0; i < b.length; i += 700) yield b.subarray(i, i + 700);
  }
  for await (const e of readTar(src())) for await (const c of e.body) void c.length;
}

describe("fuzz: parsers of hostile input fail only with RafsnapErrors", () => {
  test("RAFS bootstraps (open + walk)", async () => {
    const tarBuilt = (await buildFromTar(join(FIX, "all-entry-type.tar"))).result.bootstrap;
    const seeds = [new Uint8Array(readFileSync(join(FIX, "rafs-v6-2.2.boot"))), tarBuilt];
    for (const s of seeds) openAndWalk(s); // the seeds themselves are valid
    expect(await fuzz("bootstrap", seeds, openAndWalk, 1)).toEqual([]);
  }, 120_000);

  test(".blob.meta files (alone and against the blob table entry)", async () => {
    const meta = new Uint8Array(readFileSync(join(FIX, "233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a.blob.meta")));
    const parsed = parseBlobMetaFile(bytesSource(meta));
    const h = parsed.header;
    const entry = {
      blobId: "233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a",
      chunkCount: h.ciEntries,
      ciCompressor: h.ciCompressor,
      ciOffset: h.ciOffset,
      ciCompressedSize: h.ciCompressedSize,
      ciUncompressedSize: h.ciUncompressedSize,
      features: h.features,
      uncompressedSize: 2 ** 40,
    } as unknown as BlobEntry;
    const bad = await fuzz(
      "blob.meta",
      [meta],
      (b) => {
        try {
          parseBlobMetaFile(bytesSource(b));
        } finally {
          parseBlobMetaFile(bytesSource(b), entry);
        }
      },
      2,
    );
    expect(bad).toEqual([]);
  }, 120_000);

  test("tar streams", async () => {
    const seeds = [new Uint8Array(readFileSync(join(FIX, "all-entry-type.tar")))];
    await readAll(seeds[0] as Uint8Array);
    expect(await fuzz("tar", seeds, readAll, 3)).toEqual([]);
  }, 120_000);

  test("manifests, indexes and configs (bytes and JSON values)", async () => {
    const d = (n: number) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
      size: 1234,
      annotations: { a: "b" },
    });
    const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: d(1), layers: [d(2), d(3)] };
    const index = { schemaVersion: 2, manifests: [{ ...d(4), platform: { os: "linux", architecture: "amd64" } }] };
    const config = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [d(5).digest, d(6).digest] }, history: [{ created_by: "x" }] };
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    for (const [v, f] of [
      [manifest, parseManifest],
      [index, parseIndex],
      [config, parseImageConfig],
    ] as const)
      f(enc(v), "seed");
    // Each input goes to all three parsers; it counts as accepted when one of them takes it.
    const all = (b: Uint8Array) => {
      let refused: RafsnapError | undefined;
      let took = false;
      for (const f of [parseManifest, parseIndex, parseImageConfig]) {
        try {
          f(b, "fuzzed");
          took = true;
        } catch (e) {
          if (!(e instanceof RafsnapError)) throw e;
          refused ??= e;
        }
      }
      if (!took && refused) throw refused;
    };
    const bytes = await fuzz("manifest bytes", [enc(manifest), enc(index), enc(config)], all, 4);
    // Structural: replace a random value anywhere in the document with a value of another type.
    const rnd = prng(SEED + 5);
    const odd = [null, -1, 1e300, "", "x".repeat(300), [], {}, true, [null], { digest: 1 }];
    const structural: string[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const doc = JSON.parse(JSON.stringify([manifest, index, config][i % 3]));
      const paths: { o: Record<string, unknown> | unknown[]; k: string | number }[] = [];
      const visit = (o: unknown) => {
        if (typeof o !== "object" || o === null) return;
        for (const k of Object.keys(o)) {
          paths.push({ o: o as Record<string, unknown>, k });
          visit((o as Record<string, unknown>)[k]);
        }
      };
      visit(doc);
      const p = paths[Math.floor(rnd() * paths.length)];
      if (p) (p.o as Record<string, unknown>)[p.k] = odd[Math.floor(rnd() * odd.length)];
      try {
        all(enc(doc));
      } catch (e) {
        if (!(e instanceof RafsnapError)) structural.push(`structural round ${i}: ${(e as Error).name}: ${(e as Error).message}`);
      }
    }
    expect([...bytes, ...structural]).toEqual([]);
  }, 120_000);
});
