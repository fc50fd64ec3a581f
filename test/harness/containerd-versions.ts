// The containerd releases the end-to-end tests run against, and where their binaries are.
//
// - 1.x: Debian 12's package, installed system-wide (scripts/deps.sh); config version 2.
// - 2.x: Debian unstable's `containerd` package (2.1.x when this was written), fetched with
//   `apt-get download` from the Debian archive this machine's apt already uses and unpacked
//   with `dpkg -x` into a cache directory. Nothing is installed, apt's own sources and state
//   are untouched (apt runs with its lists and archives under the cache). Config version 3.
//   Its binaries are static (no library dependency); its shim is found through `PATH` (containerd
//   2.x looks `containerd-shim-runc-v2` up there first), so the harness puts the unpacked
//   `usr/bin` first in containerd's `PATH`. runc stays the system one.
//
// The cache (`RAFSNAP_CONTAINERD2_CACHE`, default `/var/cache/rafsnap-test/containerd-2`) keeps
// the unpacked tree between runs: `tree/usr/bin/{containerd,containerd-shim-runc-v2,ctr}`.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./process.ts";

/** Major version of a containerd the tests run: 1 (system, config v2) or 2 (cached, config v3). */
export type ContainerdMajor = 1 | 2;

/** The majors every parameterised e2e test runs against. */
export const CONTAINERD_MAJORS: readonly ContainerdMajor[] = [1, 2];

/** One containerd release: its binaries and the config version it reads. */
export interface ContainerdBinaries {
  major: ContainerdMajor;
  /** Config version written for it: 2 for 1.x, 3 for 2.x. */
  configVersion: 2 | 3;
  containerd: string;
  ctr: string;
  /** Directory put first in containerd's `PATH` (for its shim), if any. */
  binDir?: string;
}

/** The Debian suite 2.x comes from. */
const SUITE = "sid";

/** The system containerd 1.x; override with `RAFSNAP_CONTAINERD_BIN` / `RAFSNAP_CTR_BIN`. */
export function systemContainerd(): ContainerdBinaries {
  return {
    major: 1,
    configVersion: 2,
    containerd: process.env.RAFSNAP_CONTAINERD_BIN ?? "/usr/bin/containerd",
    ctr: process.env.RAFSNAP_CTR_BIN ?? "/usr/bin/ctr",
  };
}

/** The cache directory of containerd 2.x (`RAFSNAP_CONTAINERD2_CACHE` or the default). */
export function containerd2CacheDir(): string {
  return process.env.RAFSNAP_CONTAINERD2_CACHE || "/var/cache/rafsnap-test/containerd-2";
}

/** containerd 2.x's binaries in an unpacked tree (they may not exist yet: see {@link ensureContainerd2}). */
export function containerd2At(cache = containerd2CacheDir()): ContainerdBinaries {
  const binDir = join(cache, "tree/usr/bin");
  return { major: 2, configVersion: 3, containerd: join(binDir, "containerd"), ctr: join(binDir, "ctr"), binDir };
}

/**
 * containerd 2.x, downloaded and unpacked into the cache on first use (needs root and Debian's
 * archive; later calls only check the files). Concurrent callers may both download; the first
 * complete tree wins the rename, the other is removed.
 *
 * @throws Error with apt's output when the package cannot be fetched or unpacked, or when the
 *   unpacked containerd does not report a 2.x version.
 */
export async function ensureContainerd2(cache = containerd2CacheDir()): Promise<ContainerdBinaries> {
  const bins = containerd2At(cache);
  if (!existsSync(join(bins.binDir as string, "containerd-shim-runc-v2"))) {
    mkdirSync(cache, { recursive: true });
    const deb = await downloadDeb(join(cache, "apt"), "containerd");
    const tmp = mkdtempSync(join(cache, "tree.tmp-"));
    try {
      await must(["dpkg", "-x", deb, tmp], "dpkg -x");
      try {
        renameSync(tmp, join(cache, "tree"));
      } catch (err) {
        if (!existsSync(join(cache, "tree/usr/bin/containerd-shim-runc-v2"))) throw err;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const v = await run([bins.containerd, "--version"], { timeoutMs: 10_000 });
  if (v.code !== 0 || !/ v?2\.\d+\.\d+/.test(v.stdout)) throw new Error(`${bins.containerd} is not containerd 2.x: ${v.stdout}${v.stderr}`);
  return bins;
}

/** The binaries of `major`, fetching 2.x when needed ({@link ensureContainerd2}). */
export async function containerdOf(major: ContainerdMajor): Promise<ContainerdBinaries> {
  return major === 1 ? systemContainerd() : ensureContainerd2();
}

/**
 * `apt-get download PKG` from {@link SUITE} of the archive in apt's sources, with apt's lists
 * and archives kept under `state` (the system's apt configuration is only read). Returns the
 * `.deb` path (reused when already downloaded).
 */
async function downloadDeb(state: string, pkg: string): Promise<string> {
  const archives = join(state, "archives");
  const found = () => readdirSync(archives).filter((n) => n.startsWith(`${pkg}_`) && n.endsWith(".deb"));
  for (const d of [join(state, "lists/partial"), join(archives, "partial")]) mkdirSync(d, { recursive: true });
  if (found().length) return join(archives, found()[0] as string);
  const sources = join(state, "sources.list");
  writeFileSync(sources, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${debianArchiveUri()} ${SUITE} main\n`);
  const o = [
    `-oDir::Etc::SourceList=${sources}`,
    "-oDir::Etc::SourceParts=/dev/null",
    `-oDir::State::Lists=${join(state, "lists")}`,
    `-oDir::Cache::Archives=${archives}`,
    `-oDir::Cache=${state}`,
    "-oAPT::Sandbox::User=root",
  ];
  await must(["apt-get", ...o, "update", "-qq"], "apt-get update", undefined, 300_000);
  await must(["apt-get", ...o, "download", pkg], "apt-get download", archives, 300_000);
  const [deb] = found();
  if (!deb) throw new Error(`apt-get download ${pkg}: no ${pkg}_*.deb in ${archives}`);
  return join(archives, deb);
}

/** The first Debian archive URI in apt's sources (deb822 or one-line format). */
function debianArchiveUri(): string {
  const read = (p: string) => (existsSync(p) ? readFileSync(p, "utf8") : "");
  const deb822 = /^URIs:\s*(\S+)/m.exec(read("/etc/apt/sources.list.d/debian.sources"));
  if (deb822?.[1]) return deb822[1];
  const line = /^deb\s+(?:\[[^\]]*\]\s+)?(https?:\S+)/m.exec(read("/etc/apt/sources.list"));
  if (line?.[1]) return line[1];
  throw new Error("cannot find the Debian archive URI in apt's sources");
}

async function must(cmd: string[], what: string, cwd?: string, timeoutMs = 60_000): Promise<void> {
  const r = await run(cmd, { cwd, timeoutMs });
  if (r.code !== 0 || r.timedOut) throw new Error(`${what} ${r.timedOut ? "timed out" : `exited ${r.code}`}: ${r.stderr}${r.stdout}`);
}
