// Real two-layer images from Debian's own packages: layer 1 is a minbase tree, layer 2 the
// difference from it to minbase + some packages, both trees built by mmdebstrap
// (test/images/debian-rootfs.sh). Trees and layer tars are cached between runs, because a
// build takes minutes. Root only.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RegistryClient } from "../../src/registry/index.ts";
import { treeManifest } from "../support/tree-compare.ts";
import { removeTree } from "./cleanup.ts";
import { writeDiffLayer, writeTreeLayer } from "./layer-tar.ts";
import { pushImage, type PushedImage } from "./oci-image.ts";

/** The tree builder: `SOURCE_DATE_EPOCH=N debian-rootfs.sh OUT SUITE VARIANT [PKG...]`. */
export const DEBIAN_ROOTFS_SCRIPT = join(import.meta.dir, "../images/debian-rootfs.sh");
export const DEBIAN_SUITE = "bookworm";
export const DEBIAN_VARIANT = "minbase";
/** Part of every cache key: bump it when the trees or layers would come out differently. */
export const DEBIAN_BUILDER_VERSION = 1;
/** SOURCE_DATE_EPOCH of every build (2024-01-01T00:00:00Z); newer mtimes are clamped to it. */
export const DEBIAN_SOURCE_DATE_EPOCH = 1704067200;
const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The predefined images. */
export type DebianImageKind = "python" | "node" | "gcc";

/** An image to build: minbase plus `packages`, and what running it should print. */
export interface DebianImageSpec {
  /** A name for messages (the cache key depends on the packages only). */
  name: string;
  /** Installed with `mmdebstrap --include` on top of minbase; at least one. */
  packages: string[];
  /** The config's Cmd; default `["bash"]`, as Debian's own images. */
  cmd?: string[];
  /** What `cmd` prints on stdout (trimmed), when it is a check. */
  expect?: string;
}

/** The specs of {@link DebianImageKind}. */
export const DEBIAN_IMAGES: Readonly<Record<DebianImageKind, Readonly<DebianImageSpec>>> = Object.freeze({
  python: { name: "python", packages: ["python3"], cmd: ["python3", "-c", "print('hello from python3')"], expect: "hello from python3" },
  node: { name: "node", packages: ["nodejs"], cmd: ["node", "-e", "console.log('hello from node')"], expect: "hello from node" },
  gcc: {
    name: "gcc",
    packages: ["gcc", "libc6-dev"],
    cmd: [
      "sh",
      "-c",
      `printf '#include <stdio.h>\\nint main(void) { puts("hello from gcc"); return 0; }\\n' >/tmp/hello.c && gcc -o /tmp/hello /tmp/hello.c && /tmp/hello`,
    ],
    expect: "hello from gcc",
  },
});

/** A built (or cached) image. All paths are in the cache: read them, never change them. */
export interface DebianImage {
  name: string;
  /** Cache key of the full tree (its directory is `<cache>/<key>`). */
  key: string;
  packages: string[];
  /** The minbase tree (layer 1's content). */
  base: string;
  /** The full tree: what layer 1 then layer 2 must give. */
  tree: string;
  /** Uncompressed layer tars: minbase, then the difference to the full tree. */
  layers: [string, string];
  cmd: string[];
  expect?: string;
}

/** Options of {@link debianImage}. */
export interface DebianImageOptions {
  /** Default: `RAFSNAP_IMAGE_CACHE`, else `/var/cache/rafsnap-test/debian`. */
  cacheDir?: string;
  /** Progress lines; default to stderr. */
  log?: (line: string) => void;
}

/** What a cache directory's `info.json` holds. */
export interface TreeInfo {
  key: string;
  suite: string;
  variant: string;
  packages: string[];
  builder: number;
  sourceDateEpoch: number;
  /** Random, per build: names the layer 2 made against this tree as a base. */
  id: string;
  builtAt: string;
  buildSeconds: number;
  paths: number;
  /** Sum of regular file sizes. */
  fileBytes: number;
}

/** The cache root: `RAFSNAP_IMAGE_CACHE` or `/var/cache/rafsnap-test/debian`. */
export function debianImageCacheDir(): string {
  return process.env.RAFSNAP_IMAGE_CACHE || "/var/cache/rafsnap-test/debian";
}

/** Sorted, deduplicated package list; throws on a name apt would not take. */
function normalizePackages(packages: readonly string[]): string[] {
  for (const p of packages) if (!/^[a-z0-9][a-z0-9+.:=~-]*$/.test(p)) throw new Error(`not a Debian package name: ${JSON.stringify(p)}`);
  return [...new Set(packages)].sort();
}

/** Cache key of a tree: sha256 over suite, variant, sorted packages and the builder version (24 hex digits). */
export function debianTreeKey(packages: readonly string[]): string {
  const id = JSON.stringify({ suite: DEBIAN_SUITE, variant: DEBIAN_VARIANT, packages: normalizePackages(packages), builder: DEBIAN_BUILDER_VERSION });
  return new Bun.CryptoHasher("sha256").update(id).digest("hex").slice(0, 24);
}

/**
 * Holds an exclusive `flock(1)` on `path` until `release()`. The lock belongs to a child
 * `flock` process that waits on its stdin, so it also ends when this process dies.
 */
async function holdLock(path: string, log: (line: string) => void): Promise<{ release(): Promise<void> }> {
  const proc = Bun.spawn(["flock", "--exclusive", path, "sh", "-c", "echo locked; exec cat >/dev/null"], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const waiting = setTimeout(() => log(`waiting for ${path} (another builder holds it)`), 2000);
  try {
    const reader = proc.stdout.getReader();
    const first = await reader.read();
    reader.releaseLock();
    if (first.done) throw new Error(`flock ${path} failed (${await proc.exited}): ${await new Response(proc.stderr).text()}`);
  } finally {
    clearTimeout(waiting);
  }
  return {
    async release() {
      proc.stdin.end();
      await proc.exited;
    },
  };
}

async function withLock<T>(path: string, log: (line: string) => void, fn: () => Promise<T>): Promise<T> {
  const lock = await holdLock(path, log);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

const readInfo = (dir: string) => JSON.parse(readFileSync(join(dir, "info.json"), "utf8")) as TreeInfo;

/**
 * The cache directory of minbase + `packages` (`tree/`, `info.json` and, for minbase itself,
 * `layer.tar` = layer 1), built when missing: into `<key>.tmp` under `flock <key>.lock`, renamed into
 * place when complete. A stale `<key>.tmp` of a builder that died is removed first.
 */
async function ensureTree(cache: string, packages: string[], log: (line: string) => void): Promise<string> {
  const dir = join(cache, debianTreeKey(packages));
  if (existsSync(dir)) return dir;
  mkdirSync(cache, { recursive: true });
  return withLock(`${dir}.lock`, log, async () => {
    if (existsSync(dir)) return dir;
    const tmp = `${dir}.tmp`;
    if (existsSync(tmp)) {
      log(`removing the stale ${tmp} of a builder that did not finish`);
      removeTree(tmp);
    }
    mkdirSync(tmp);
    const what = `${DEBIAN_VARIANT}${packages.length ? ` + ${packages.join(" ")}` : ""}`;
    log(`building ${what} (${DEBIAN_SUITE}) into ${tmp}: mmdebstrap takes a minute or more`);
    const t0 = performance.now();
    const proc = Bun.spawn(["bash", DEBIAN_ROOTFS_SCRIPT, join(tmp, "tree"), DEBIAN_SUITE, DEBIAN_VARIANT, ...packages], {
      env: { ...process.env, SOURCE_DATE_EPOCH: String(DEBIAN_SOURCE_DATE_EPOCH) },
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
    });
    const code = await proc.exited;
    if (code !== 0) throw new Error(`${DEBIAN_ROOTFS_SCRIPT} for ${what} exited ${code} (its output is above); ${tmp} is left for inspection`);
    const manifest = await treeManifest(join(tmp, "tree"));
    if (packages.length === 0) {
      log(`writing layer 1 (${manifest.size} paths)`);
      await writeTreeLayer(join(tmp, "tree"), join(tmp, "layer.tar"), DEBIAN_SOURCE_DATE_EPOCH);
    }
    let fileBytes = 0;
    for (const r of manifest.values()) fileBytes += r.size ?? 0;
    const info: TreeInfo = {
      key: debianTreeKey(packages),
      suite: DEBIAN_SUITE,
      variant: DEBIAN_VARIANT,
      packages,
      builder: DEBIAN_BUILDER_VERSION,
      sourceDateEpoch: DEBIAN_SOURCE_DATE_EPOCH,
      id: crypto.randomUUID(),
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((performance.now() - t0) / 100) / 10,
      paths: manifest.size,
      fileBytes,
    };
    writeFileSync(join(tmp, "info.json"), `${JSON.stringify(info, null, 2)}\n`);
    renameSync(tmp, dir);
    log(`${what}: ${info.paths} paths, ${(fileBytes / 1e6).toFixed(0)} MB in files, built in ${info.buildSeconds} s → ${dir}`);
    return dir;
  });
}

/**
 * Layer 2 of the tree in `fullDir` against the minbase in `baseDir`: `<fullDir>/layer2-<base id>.tar`,
 * made under the full tree's lock when missing (written to a temp name, renamed when complete;
 * layer 2s against older bases are removed).
 */
async function ensureLayer2(baseDir: string, fullDir: string, log: (line: string) => void): Promise<string> {
  const out = join(fullDir, `layer2-${readInfo(baseDir).id}.tar`);
  if (existsSync(out)) return out;
  return withLock(`${fullDir}.lock`, log, async () => {
    if (existsSync(out)) return out;
    for (const name of readdirSync(fullDir))
      if (/^layer2-.*\.tar$/.test(name) || name.endsWith(".tmp")) rmSync(join(fullDir, name), { recursive: true, force: true });
    log(`writing layer 2 of ${fullDir} against ${baseDir}`);
    const t0 = performance.now();
    const stats = await writeDiffLayer(join(baseDir, "tree"), join(fullDir, "tree"), `${out}.tmp`, join(fullDir, "whiteouts.tmp"), DEBIAN_SOURCE_DATE_EPOCH);
    renameSync(`${out}.tmp`, out);
    log(`layer 2: ${stats.changed} changed paths, ${stats.whiteouts} whiteouts, ${stats.members} members, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return out;
  });
}

/**
 * A Debian image (a {@link DebianImageKind} or a spec): minbase as layer 1, minbase + the
 * packages as the full tree, layer 2 the difference. Everything comes from the cache
 * (`<cache>/<key>/` per tree, keyed by {@link debianTreeKey}) or is built into it, which takes
 * minutes (progress on stderr). Root only (mmdebstrap --mode=root).
 */
export async function debianImage(spec: DebianImageKind | DebianImageSpec, opts: DebianImageOptions = {}): Promise<DebianImage> {
  const s = typeof spec === "string" ? DEBIAN_IMAGES[spec] : spec;
  if (!s) throw new Error(`unknown Debian image ${JSON.stringify(spec)}`);
  const packages = normalizePackages(s.packages);
  if (packages.length === 0) throw new Error(`Debian image ${s.name}: no packages (layer 2 would be empty)`);
  const cache = opts.cacheDir ?? debianImageCacheDir();
  const log = opts.log ?? ((line: string) => console.error(`[debian-images] ${line}`));
  const base = await ensureTree(cache, [], log);
  const full = await ensureTree(cache, packages, log);
  const layer2 = await ensureLayer2(base, full, log);
  return {
    name: s.name,
    key: debianTreeKey(packages),
    packages,
    base: join(base, "tree"),
    tree: join(full, "tree"),
    layers: [join(base, "layer.tar"), layer2],
    cmd: [...(s.cmd ?? ["bash"])],
    expect: s.expect,
  };
}

/** The OCI architecture of this machine (the packages are built for it). */
function ociArch(): string {
  return process.arch === "x64" ? "amd64" : process.arch;
}

/**
 * Pushes `image` as `repo:tag`: both layers gzipped (`pigz -n`, scratch files at `work-N.tar.gz`),
 * a config with the diff_ids, PATH and the image's Cmd, and an OCI manifest.
 */
export async function pushDebianImage(c: RegistryClient, repo: string, tag: string, image: DebianImage, work: string): Promise<PushedImage> {
  return pushImage(
    c,
    repo,
    tag,
    image.layers.map((tar) => ({ tar })),
    work,
    { architecture: ociArch(), config: { Env: [PATH_ENV], Cmd: image.cmd } },
  );
}
