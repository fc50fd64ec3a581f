// Hostile images through the snapshots API (issue: files of a layer are untrusted). A victim
// image is unpacked and mounted in shared mode; then images whose bootstrap layer holds a
// symlink (to the victim's bootstrap, to /etc/shadow, to /dev/zero, a symlinked `image`
// directory), a FIFO, or planted `*.blob.meta` files are unpacked beside it. Each mount of a
// hostile bootstrap is refused naming the rule and never what the link points at; the server
// stays responsive and small; a planted blob.meta never enters the cache. Root only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { Cleanup } from "../harness/cleanup.ts";
import { HELLO } from "../harness/images.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { prepareNydusImage, serveNydus, type UnpackLayer, UnpackLabel, unpackNydus } from "../support/nydus-unpack.ts";
import { codeOf } from "../support/failure.ts";
import type { RafsnapServer } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/hostile-images.test.ts needs root (mounts); run it as root as CI does");

/** Resident set of a process, bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

describe.skipIf(!isRoot)("hostile images: files of the bootstrap layer are untrusted", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let image = "";
  let layers: UnpackLayer[] = [];
  let bootTgz = "";
  let s: RafsnapServer;
  let cacheDir = "";
  let victimBoot = "";

  async function serve(name: string): Promise<RafsnapServer> {
    const cache = join(dir, name, "cache");
    const srv = await serveNydus(cleanup, dir, name, `daemon_mode = "shared"\n[cache_manager]\ncache_dir = ${JSON.stringify(cache)}`);
    cacheDir = cache;
    return srv;
  }

  const extractBoot = async (upper: string) => {
    expect((await run(["tar", "-xzf", bootTgz, "-C", upper])).code).toBe(0);
  };

  /** Unpacks an image whose bootstrap layer `shape` fills, then asks for a View of it. */
  async function hostile(prefix: string, shape: (upper: string) => void | Promise<void>) {
    // A registry that does not exist: the attacker has no access to the victim's.
    const top = await unpackNydus(s.client, layers, { prefix, imageRef: "127.0.0.1:9/nobody/evil:1", fillBoot: async (u) => shape(u) });
    const t0 = performance.now();
    const r = await codeOf(s.client.view({ key: `${prefix}-view`, parent: top }));
    return { ...r, ms: performance.now() - t0 };
  }

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-hostile-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    ({ image, layers, bootTgz } = await prepareNydusImage(dir, reg));
    // The victim: a real image, mounted and read.
    s = await serve("shared");
    const top = await unpackNydus(s.client, layers, { prefix: "victim", imageRef: image, fillBoot: extractBoot });
    const view = await s.client.view({ key: "victim-view", parent: top });
    const lower = (view.mounts[0]?.options.find((o) => o.startsWith("lowerdir=")) ?? "").slice(9).split(":")[0] as string;
    expect(readFileSync(join(lower, "data/hello"), "utf8").trim()).toBe(HELLO);
    const snaps = join(s.root, "snapshots");
    victimBoot = readdirSync(snaps)
      .map((id) => join(snaps, id, "fs", "image", "image.boot"))
      .find((p) => {
        try {
          return statSync(p).isFile();
        } catch {
          return false;
        }
      }) as string;
    expect(victimBoot).toBeTruthy();
  }, 180_000);
  afterAll(() => cleanup.run());

  test("a bootstrap symlinked to another tenant's bootstrap is refused: nothing of the victim is mounted", async () => {
    const r = await hostile("steal", (u) => {
      mkdirSync(join(u, "image"));
      symlinkSync(victimBoot, join(u, "image", "image.boot"));
    });
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.message).toContain("image/image.boot goes through a symbolic link");
    expect(r.message).toContain("127.0.0.1:9/nobody/evil:1");
    expect(r.message).not.toContain(victimBoot);
    expect((await codeOf(s.client.stat({ key: "steal-view" }))).code).toBe(Code.NotFound);
  }, 60_000);

  test("a real bootstrap naming blobs that are not layers of its image is refused", async () => {
    // The victim's bootstrap, shipped as a regular file, over data layers of the attacker's own:
    // it would read the victim's blobs from the shared cache by their ids.
    const fake = (i: number) => `sha256:${new Bun.CryptoHasher("sha256").update(`evil layer ${i}`).digest("hex")}`;
    const forged = layers.map((l, i) => (UnpackLabel.blob in l.annotations ? { ...l, digest: fake(i) } : l));
    const top = await unpackNydus(s.client, forged, { prefix: "borrow", imageRef: "127.0.0.1:9/nobody/evil:2", fillBoot: extractBoot });
    const r = await codeOf(s.client.view({ key: "borrow-view", parent: top }));
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.message).toMatch(/reads blob [0-9a-f]{64}, which is neither a layer of the image nor a reference blob/);
    // The same bootstrap with the image's real layers mounts (the rule is about ownership only).
    expect(layers.filter((l) => UnpackLabel.blob in l.annotations).length).toBeGreaterThan(0);
  }, 60_000);

  test("a symlinked image directory is refused the same way", async () => {
    const r = await hostile("dirlink", (u) => {
      symlinkSync(join(victimBoot, ".."), join(u, "image"));
    });
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.message).toContain("symbolic link");
  }, 60_000);

  test("a bootstrap linked to a host file leaks nothing about it (no size, no content)", async () => {
    const shadowSize = statSync("/etc/shadow").size;
    const r = await hostile("shadow", (u) => {
      mkdirSync(join(u, "image"));
      symlinkSync("/etc/shadow", join(u, "image", "image.boot"));
    });
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.message).not.toContain(String(shadowSize));
    expect(r.message).not.toMatch(/\d+ bytes/);
    expect(r.message).not.toContain("root:");
  }, 60_000);

  test("a bootstrap linked to /dev/zero, or a FIFO, is refused at once; the server stays small and answers", async () => {
    const before = rssOf(s.proc.pid);
    const zero = await hostile("zero", (u) => {
      mkdirSync(join(u, "image"));
      symlinkSync("/dev/zero", join(u, "image", "image.boot"));
    });
    expect(zero.code).toBe(Code.FailedPrecondition);
    const fifo = await hostile("fifo", (u) => {
      mkdirSync(join(u, "image"));
      execFileSync("mkfifo", [join(u, "image", "image.boot")]);
    });
    expect(fifo.code).toBe(Code.FailedPrecondition);
    expect(fifo.message).toContain("not a regular file");
    // Refused without reading: well within the unpack's own time, and no growth to speak of.
    expect(zero.ms).toBeLessThan(5_000);
    expect(fifo.ms).toBeLessThan(5_000);
    expect(rssOf(s.proc.pid) - before).toBeLessThan(200 << 20);
    expect((await s.client.stat({ key: "victim-view" })).info?.name).toBe("victim-view");
  }, 60_000);

  test("planted blob.meta files (links to a host file, a foreign blob's, a forged cached table) are never trusted", async () => {
    // A second node with an empty cache, so that a copy would happen.
    const victimCache = cacheDir;
    const blobIds = readdirSync(victimCache)
      .filter((n) => n.endsWith(".blob.meta"))
      .map((n) => n.slice(0, 64));
    expect(blobIds.length).toBeGreaterThan(0);
    const real = readFileSync(join(victimCache, `${blobIds[0]}.blob.meta`));
    const forged = Buffer.from(real);
    // s_ci_entries of the header (last 4096 bytes, offset 12) no longer matches the blob table.
    forged.writeUInt32LE(forged.readUInt32LE(forged.length - 4096 + 12) + 1, forged.length - 4096 + 12);
    const s2 = await serve("planted");
    // One forged table already in the cache (as an older build could have let an image plant
    // it): the daemon checks it against the image's blob table and fetches the real one.
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(join(cacheDir, `${blobIds[0]}.blob.meta`), forged);
    const top = await unpackNydus(s2.client, layers, {
      prefix: "planted",
      imageRef: image,
      fillBoot: async (u) => {
        await extractBoot(u);
        for (const id of blobIds) symlinkSync("/etc/shadow", join(u, "image", `${id}.blob.meta`));
        // A blob id that is not the image's own: never copied.
        writeFileSync(join(u, "image", `${"e".repeat(64)}.blob.meta`), real);
      },
    });
    const view = await s2.client.view({ key: "planted-view", parent: top });
    const lower = (view.mounts[0]?.options.find((o) => o.startsWith("lowerdir=")) ?? "").slice(9).split(":")[0] as string;
    expect(readFileSync(join(lower, "data/hello"), "utf8").trim()).toBe(HELLO);
    const shadow = readFileSync("/etc/shadow");
    for (const id of blobIds) {
      const p = join(cacheDir, `${id}.blob.meta`);
      let cached: Buffer | undefined;
      try {
        expect(lstatSync(p).isFile()).toBe(true);
        cached = readFileSync(p);
      } catch {}
      if (cached) {
        expect(cached.equals(forged)).toBe(false);
        expect(cached.equals(shadow)).toBe(false);
        // What the daemon cached is the blob's own table: the same as the victim node fetched.
        expect(cached.equals(readFileSync(join(victimCache, `${id}.blob.meta`)))).toBe(true);
      }
    }
    expect(() => lstatSync(join(cacheDir, `${"e".repeat(64)}.blob.meta`))).toThrow();
  }, 120_000);
});
