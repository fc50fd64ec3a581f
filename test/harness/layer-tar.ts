// OCI layer tars from directory trees, with GNU tar: a whole tree as one layer, the difference
// between two trees as a layer with whiteouts, and applying layers to a directory the way
// containerd's unpacker does. Root only for faithful owners, devices and xattrs.
import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type PathRecord, type TreeManifest, treeManifest } from "../support/tree-compare.ts";
import { run } from "./process.ts";

/** Tar options shared by every layer: sorted, numeric owners, all xattrs, PAX without times that vary. */
export function layerTarOptions(sourceDateEpoch: number): string[] {
  return [
    "--sort=name",
    "--numeric-owner",
    "--xattrs",
    "--xattrs-include=*",
    "--format=posix",
    "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
    `--mtime=@${sourceDateEpoch}`,
    "--clamp-mtime",
  ];
}

const TAR_ENV = { LC_ALL: "C", TZ: "UTC" };

async function tar(args: string[], what: string, timeoutMs = 600_000): Promise<string> {
  const r = await run(["tar", ...args], { env: TAR_ENV, timeoutMs });
  if (r.code !== 0) throw new Error(`${what}: tar exited ${r.code}${r.timedOut ? " (timed out)" : ""}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** Writes all of `root` (entries `./`, `./bin`, …) as a reproducible layer tar at `out`. */
export async function writeTreeLayer(root: string, out: string, sourceDateEpoch: number): Promise<void> {
  await tar(["--create", "--file", out, ...layerTarOptions(sourceDateEpoch), "-C", root, "."], `layer of ${root}`);
}

/** The tar member name of a manifest path (`/` → `.`, `/etc` → `./etc`). */
const member = (p: string) => (p === "/" ? "." : `.${p}`);

/** Parent of a manifest path (`/etc/x` → `/etc`, `/etc` → `/`). */
const parentOf = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";

/** Whether an upper record differs from the lower one in anything a layer must carry. */
function changed(l: PathRecord, u: PathRecord): boolean {
  return (
    l.type !== u.type ||
    l.mode !== u.mode ||
    l.uid !== u.uid ||
    l.gid !== u.gid ||
    l.size !== u.size ||
    l.sha256 !== u.sha256 ||
    l.target !== u.target ||
    l.rdev !== u.rdev ||
    l.mtimeNs !== u.mtimeNs ||
    JSON.stringify(l.xattrs) !== JSON.stringify(u.xattrs) ||
    JSON.stringify(l.links) !== JSON.stringify(u.links)
  );
}

/** tar's `--sort=name` order over whole paths: component by component, bytewise. */
function tarOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a.replaceAll("/", "\0")), Buffer.from(b.replaceAll("/", "\0")));
}

/** A name in a `tar -T` list (GNU tar unquotes list lines: backslash and newline escaped). */
const listLine = (name: string) => name.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");

/** What {@link writeDiffLayer} put into the layer. */
export interface DiffLayerStats {
  /** Upper paths that are new or differ (type, mode, owner, size, content, target, rdev, xattrs, mtime, hard-link group). */
  changed: number;
  /** Whiteouts written (one per topmost removed path). */
  whiteouts: number;
  /** Tar members in all: changed paths, their hard-link partners and parents, whiteouts. */
  members: number;
}

/**
 * Writes the layer that turns `lower` into `upper` to `out`: every upper path that is new or
 * changed (mtime included), the other members of its hard-link group (so tar stores one file and
 * links, all in this archive), every parent directory of those, and a `.wh.NAME` whiteout for
 * each topmost lower path that `upper` lacks. `work` is a scratch directory (created, removed)
 * for the whiteout files. Manifests already computed can be passed in.
 */
export async function writeDiffLayer(
  lower: string,
  upper: string,
  out: string,
  work: string,
  sourceDateEpoch: number,
  manifests: { lower?: TreeManifest; upper?: TreeManifest } = {},
): Promise<DiffLayerStats> {
  const [lm, um] = await Promise.all([manifests.lower ?? treeManifest(lower), manifests.upper ?? treeManifest(upper)]);
  const picked = new Set<string>();
  let changedCount = 0;
  for (const [p, u] of um) {
    const l = lm.get(p);
    if (l && !changed(l, u)) continue;
    changedCount++;
    picked.add(p);
    for (const other of u.links ?? []) picked.add(other);
  }
  const whiteouts: string[] = [];
  for (const p of lm.keys()) {
    if (um.has(p)) continue;
    const parent = parentOf(p);
    if (um.get(parent)?.type !== "dir" || lm.get(parent)?.type !== "dir") continue; // an ancestor's whiteout or type change covers it
    whiteouts.push(`${parent === "/" ? "" : parent}/.wh.${p.slice(p.lastIndexOf("/") + 1)}`);
  }
  const fromUpper = new Set(picked);
  for (const p of [...picked, ...whiteouts]) {
    for (let d = parentOf(p); d !== "/" && !fromUpper.has(d); d = parentOf(d)) fromUpper.add(d);
  }
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    for (const w of whiteouts) {
      mkdirSync(join(work, dirname(w)), { recursive: true });
      writeFileSync(join(work, w), "", { mode: 0o644 });
    }
    // -C lines switch the source directory inside the list (absolute: they accumulate), so
    // upper paths and whiteouts interleave in one archive in tar's own order.
    const [upperAbs, workAbs] = [resolve(upper), resolve(work)];
    const entries = [...[...fromUpper].map((p) => ({ p, root: upperAbs })), ...whiteouts.map((p) => ({ p, root: workAbs }))].sort((a, b) => tarOrder(a.p, b.p));
    const lines: string[] = [];
    let cwd = "";
    for (const e of entries) {
      if (e.root !== cwd) {
        lines.push(`-C ${e.root}`);
        cwd = e.root;
      }
      lines.push(listLine(member(e.p)));
    }
    const list = join(work, ".tar-list");
    writeFileSync(list, lines.length ? `${lines.join("\n")}\n` : "");
    await tar(["--create", "--file", out, ...layerTarOptions(sourceDateEpoch), "--no-recursion", "-T", list], `diff layer ${lower} → ${upper}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { changed: changedCount, whiteouts: whiteouts.length, members: fromUpper.size + whiteouts.length };
}

/** Undoes GNU tar's default `escape` quoting of listed names (`\\`, `\n`, `\ooo`, …). */
export function unescapeTarName(s: string): string {
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92 };
  const parts: Buffer[] = [];
  for (const m of s.matchAll(/\\([0-7]{3}|[abfnrtv\\])|[^\\]+|\\/g)) {
    const esc = m[1];
    if (esc === undefined) parts.push(Buffer.from(m[0], "utf8"));
    else parts.push(Buffer.of(esc.length === 3 ? parseInt(esc, 8) : (simple[esc] as number)));
  }
  return Buffer.concat(parts).toString("utf8");
}

/** Member names of a tar (as stored: `./etc/`, `./etc/passwd`, …; directories end in `/`). */
export async function listTar(path: string): Promise<string[]> {
  const out = await tar(["--list", "--quoting-style=escape", "--file", path], `listing ${path}`);
  return out.split("\n").filter(Boolean).map(unescapeTarName);
}

/** `dest/rel`, refusing a path whose parents in `dest` are symlinks (they could lead out of it). */
function inside(dest: string, rel: string): string {
  const parts = rel.split("/").filter((x) => x && x !== ".");
  for (let i = 1; i < parts.length; i++) {
    const p = join(dest, ...parts.slice(0, i));
    try {
      if (lstatSync(p).isSymbolicLink()) throw new Error(`layer member ${rel}: ${p} is a symlink`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") break;
      throw err;
    }
  }
  return join(dest, ...parts);
}

/**
 * Applies one layer tar to `dest` as containerd's unpacker does: `.wh.NAME` removes NAME of the
 * lower layers, `.wh..wh..opq` empties its directory of lower content, any other member
 * replaces what is there unless both are directories (then only the directory's metadata is
 * updated); whiteout files themselves are not extracted. Owners, modes, devices and xattrs are
 * kept (root).
 */
export async function applyLayerTar(dest: string, layer: string): Promise<void> {
  const names = await listTar(layer);
  for (const name of names) {
    const isDir = name.endsWith("/");
    const rel = name.replace(/^\.\//, "").replace(/\/+$/, "");
    const base = rel.slice(rel.lastIndexOf("/") + 1);
    if (base === ".wh..wh..opq") {
      const dir = inside(dest, dirname(rel));
      for (const child of readdirSync(dir)) rmSync(join(dir, child), { recursive: true, force: true });
    } else if (base.startsWith(".wh.")) {
      rmSync(inside(dest, join(dirname(rel), base.slice(4))), { recursive: true, force: true });
    } else if (rel && rel !== ".") {
      const target = inside(dest, rel);
      let st: ReturnType<typeof lstatSync> | undefined;
      try {
        st = lstatSync(target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      if (st && !(isDir && st.isDirectory())) rmSync(target, { recursive: true, force: true });
    }
  }
  await tar(
    ["--extract", "--file", layer, "-C", dest, "--numeric-owner", "--same-owner", "--same-permissions", "--xattrs", "--xattrs-include=*", "--exclude=.wh.*"],
    `applying ${layer} to ${dest}`,
  );
}

/** Applies `layers` in order to `dest` (which should be empty): the merged view of an image. */
export async function applyLayers(dest: string, layers: readonly string[]): Promise<void> {
  for (const layer of layers) await applyLayerTar(dest, layer);
}
