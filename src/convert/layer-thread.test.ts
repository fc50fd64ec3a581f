// A layer converted with a worker thread (blob there, tree here) gives the same blob, blob
// info, tree and bootstrap as on the calling thread; windows are bounded; errors keep their kind.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ErrorKind } from "../errdefs/index.ts";
import type { TreeNode } from "../rafs/index.ts";
import { noise } from "../../test/harness/oci-image.ts";
import { convertLayer, type LayerConversion, type LayerJob } from "./layer-build.ts";
import { convertLayerInWorker, LayerThread } from "./layer-thread.ts";

const tmp = mkdtempSync(join(tmpdir(), "layer-build-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A gzip layer: big random files, many small text files, duplicates and a hard link. */
function makeLayer(): { gz: Uint8Array; digest: string; diffId: string } {
  const dir = join(tmp, "tree");
  mkdirSync(join(dir, "d"), { recursive: true });
  writeFileSync(join(dir, "big.bin"), noise(3 * 1024 * 1024 + 12345, 7));
  writeFileSync(join(dir, "copy.bin"), readFileSync(join(dir, "big.bin")));
  for (let i = 0; i < 300; i++) writeFileSync(join(dir, "d", `f${i}.txt`), `${i}\n${"the quick brown fox\n".repeat(200)}`);
  const tarPath = join(tmp, "layer.tar");
  const r = Bun.spawnSync([
    "tar",
    "--sort=name",
    "--mtime=@0",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--hard-dereference",
    "-C",
    dir,
    "-cf",
    tarPath,
    ".",
  ]);
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  const tar = new Uint8Array(readFileSync(tarPath));
  const gz = new Uint8Array(gzipSync(tar));
  const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
  return { gz, digest: sha(gz), diffId: sha(tar) };
}

async function* pieces(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, o + size);
}

async function drain(c: LayerConversion): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of c.blob) parts.push(p.slice());
  return Buffer.concat(parts);
}

/** Every chunk reference of `root`'s tree points at `blob` (shared objects survive the clone). */
function chunkBlobs(root: TreeNode, out: Set<unknown> = new Set()): Set<unknown> {
  for (const c of root.inode.chunks) out.add(c.blob);
  for (const child of root.children?.values() ?? []) chunkBlobs(child, out);
  return out;
}

const layer = makeLayer();
const job: LayerJob = { what: "layer 1/1", digest: layer.digest, diffId: layer.diffId, compressor: "zstd", chunkSize: 0x100000 };

test("worker thread and calling thread give identical blobs, info, trees and bootstraps", async () => {
  const here = convertLayer(pieces(layer.gz, 100_000), job);
  const hereBlob = await drain(here);
  const a = await here.finish();
  const there = convertLayerInWorker(pieces(layer.gz, 65_536), job);
  const thereBlob = await drain(there);
  const b = await there.finish();
  expect(Buffer.compare(hereBlob, thereBlob)).toBe(0);
  expect(b.bytes).toBe(a.bytes);
  expect(b.result.blob).toEqual(a.result.blob);
  expect(Buffer.compare(b.result.bootstrap, a.result.bootstrap)).toBe(0);
  expect(b.result.tree).toEqual(a.result.tree);
  expect([...chunkBlobs(b.result.tree)]).toEqual([b.result.blob]);
  expect(thereBlob.length).toBe(b.result.blob.size);
  // A ring far smaller than a chunk: pieces are split, the ring wraps and fills up often.
  for (const ringSize of [65_536, 100_003]) {
    const t = new LayerThread({ ringSize });
    try {
      const small = t.convert(pieces(layer.gz, 10_000), job);
      expect(Buffer.compare(await drain(small), hereBlob)).toBe(0);
      expect((await small.finish()).result.blob).toEqual(a.result.blob);
    } finally {
      t.close();
    }
  }
});

test("one layer thread converts layers one after the other; a failure does not spoil the next", async () => {
  const t = new LayerThread();
  try {
    const first = t.convert(pieces(layer.gz, 65_536), { ...job, compressor: "none" });
    expect(() => t.convert(pieces(layer.gz, 65_536), job)).toThrow(expect.objectContaining({ kind: ErrorKind.FailedPrecondition }));
    const firstBlob = await drain(first);
    for (const size of [300_000, 4096]) {
      const again = t.convert(pieces(layer.gz, size), { ...job, compressor: "none" });
      expect(Buffer.compare(await drain(again), firstBlob)).toBe(0);
      expect((await again.finish()).result.blob).toEqual((await first.finish()).result.blob);
      const bad = t.convert(pieces(layer.gz, 65_536), { ...job, digest: `sha256:${"0".repeat(64)}` });
      expect(await drain(bad).catch((e) => e)).toMatchObject({ kind: ErrorKind.InvalidArgument });
    }
  } finally {
    t.close();
  }
});

test("errors of the conversion keep their kind and message; finish() before the end is refused", async () => {
  const bad = convertLayerInWorker(pieces(layer.gz, 65_536), { ...job, diffId: `sha256:${"0".repeat(64)}` });
  await expect(bad.finish()).rejects.toMatchObject({ kind: ErrorKind.FailedPrecondition });
  const err = await drain(bad).catch((e) => e);
  expect(err).toMatchObject({ kind: ErrorKind.InvalidArgument });
  expect(String(err.message)).toContain("layer 1/1: uncompressed content has digest");
  const cut = convertLayerInWorker(pieces(layer.gz.subarray(0, 200_000), 65_536), job);
  expect(await drain(cut).catch((e) => e)).toMatchObject({ kind: ErrorKind.InvalidArgument });
});

/** A one-block ustar header (type `flag`), checksum filled in. */
function tarHeader(name: string, flag: string, size: number, linkname = ""): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, v: string) => h.set(new TextEncoder().encode(v), off);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, `${size.toString(8).padStart(11, "0")}\0`);
  put(136, "00000000000\0");
  put(156, flag);
  put(157, linkname);
  put(257, "ustar\x0000");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] as number);
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

test("an entry the tree refuses fails the conversion with the message the calling thread gives", async () => {
  const data = new TextEncoder().encode("x".repeat(700));
  const tar = Buffer.concat([
    tarHeader("a", "0", data.length),
    data,
    new Uint8Array(1024 - data.length),
    tarHeader("b", "1", 0, "missing"),
    new Uint8Array(1024),
  ]);
  const gz = new Uint8Array(gzipSync(tar));
  const j: LayerJob = { what: "bad layer", compressor: "zstd" };
  const here = await drain(convertLayer(pieces(gz, 4096), j)).catch((e) => e);
  const there = await drain(convertLayerInWorker(pieces(gz, 4096), j)).catch((e) => e);
  expect(here).toMatchObject({ kind: ErrorKind.InvalidArgument });
  expect(there).toMatchObject({ kind: here.kind, message: here.message });
  expect(here.message).toContain("/missing");
});

test("an error of the source is rethrown as it is", async () => {
  const boom = new Error("network gone");
  const src = (async function* () {
    yield layer.gz.slice(0, 65_536);
    throw boom;
  })();
  expect(await drain(convertLayerInWorker(src, job)).catch((e) => e)).toBe(boom);
});

test("a remote blob is read by the worker itself: same output; registry errors keep their kind", async () => {
  const served = { body: layer.gz };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => (new URL(req.url).pathname === `/v2/lib/app/blobs/${layer.digest}` ? new Response(served.body) : new Response("{}", { status: 404 })),
  });
  const t = new LayerThread();
  try {
    const remote = { host: `127.0.0.1:${server.port}`, repo: "lib/app", digest: layer.digest, registry: {} };
    const here = convertLayer(pieces(layer.gz, 100_000), job);
    const hereBlob = await drain(here);
    for (let i = 0; i < 2; i++) {
      const there = t.convert(remote, job);
      expect(Buffer.compare(await drain(there), hereBlob)).toBe(0);
      expect((await there.finish()).result.blob).toEqual((await here.finish()).result.blob);
    }
    const missing = await drain(t.convert({ ...remote, digest: `sha256:${"1".repeat(64)}` }, job)).catch((e) => e);
    expect(missing).toMatchObject({ kind: ErrorKind.NotFound });
    served.body = layer.gz.map((b, i) => (i === 5000 ? b ^ 1 : b));
    const corrupt = await drain(t.convert(remote, job)).catch((e) => e);
    expect(corrupt).toMatchObject({ kind: ErrorKind.InvalidArgument });
  } finally {
    t.close();
    server.stop(true);
  }
});

test("a consumer that stops early ends the worker and the source", async () => {
  let closed = false;
  const src = (async function* () {
    try {
      yield* pieces(layer.gz, 65_536);
    } finally {
      closed = true;
    }
  })();
  const c = convertLayerInWorker(src, job);
  for await (const _ of c.blob) break;
  for (let i = 0; i < 100 && !closed; i++) await Bun.sleep(10);
  expect(closed).toBe(true);
});
