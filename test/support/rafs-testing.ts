/**
 * Test helpers for the builder tests (not used by production code): tar a directory with GNU
 * tar, build a layer from it, and describe a tree — a source directory, a mounted EROFS, or a
 * bootstrap read back through the reader — in one comparable shape.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { readTar } from "../../src/convert/tar.ts";
import { bytesSource, type ByteSource } from "../../src/rafs/bytes.ts";
import { readBlobMeta } from "../../src/rafs/blob-meta.ts";
import { readChunkDigests } from "../../src/rafs/blob-data.ts";
import { sha256Hex } from "../../src/rafs/compress.ts";
import { readFile, type BlobAccess } from "../../src/rafs/file.ts";
import type { RafsImage } from "../../src/rafs/image.ts";
import { FileMode, S_IFMT } from "../../src/rafs/inode.ts";
import { listTree } from "../../src/rafs/tree.ts";
import { concat } from "../../src/rafs/index.ts";
import { buildLayer, type LayerBuildOptions, type LayerResult } from "../../src/rafs/builder/index.ts";

/** One path, comparable across source dir, kernel mount and reader. */
export interface PathView {
  mode: number;
  uid: number;
  gid: number;
  /** Omitted for directories (EROFS reports dirent bytes). */
  size?: number;
  mtime: number;
  symlink?: string;
  sha256?: string;
  rdev?: string;
  /** Regular files in a hard-link group: the group's smallest path. */
  linkGroup?: string;
  xattrs?: Record<string, string>;
}

/** GNU tar of `dir` (pax format, all xattrs, numeric owners) written to `out`. */
export function tarDir(dir: string, out: string): void {
  const r = Bun.spawnSync(["tar", "--xattrs", "--xattrs-include=*", "--format=pax", "--numeric-owner", "-C", dir, "-cf", out, "."]);
  if (r.exitCode !== 0) throw new Error(`tar failed: ${r.stderr.toString()}`);
}

/** Builds a layer from a tar file; returns the whole blob and the result. */
export async function buildFromTar(tarPath: string, opts: LayerBuildOptions = {}): Promise<{ blob: Uint8Array; result: LayerResult }> {
  const b = buildLayer(readTar(Bun.file(tarPath).stream()), opts);
  const parts: Uint8Array[] = [];
  for await (const p of b.blob) parts.push(p);
  return { blob: concat(parts), result: b.finish() };
}

/** Blob access for the reader, by blob index of `image`, from blob bytes keyed by blob id. */
export function blobAccess(image: RafsImage, blobs: ReadonlyMap<string, Uint8Array>): (i: number) => BlobAccess {
  const cache = new Map<number, BlobAccess>();
  return (i) => {
    const hit = cache.get(i);
    if (hit) return hit;
    const blob = image.blobs[i];
    const bytes = blob && blobs.get(blob.blobId);
    if (!blob || !bytes) throw new Error(`no blob for index ${i}`);
    const src: ByteSource = bytesSource(bytes);
    const a: BlobAccess = { blob, src, chunks: readBlobMeta(src, blob).chunks, digests: readChunkDigests(src, blob) };
    cache.set(i, a);
    return a;
  };
}

function groups(ids: Map<string, string>): Map<string, string> {
  const byId = new Map<string, string[]>();
  for (const [p, id] of ids) byId.set(id, [...(byId.get(id) ?? []), p]);
  const out = new Map<string, string>();
  for (const ps of byId.values()) if (ps.length > 1) for (const p of ps) out.set(p, [...ps].sort()[0] as string);
  return out;
}

/** `getfattr -R` of a tree → path (relative, "/"-rooted) → name → hex value. */
function getfattrTree(root: string): Map<string, Record<string, string>> {
  const r = Bun.spawnSync(["getfattr", "-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", root]);
  const out = new Map<string, Record<string, string>>();
  let cur = "";
  // Output read as latin1 (one char per byte); getfattr escapes bytes as \ooo and "\" as "\\".
  const unescapeGetfattr = (t: string) => {
    const bytes: number[] = [];
    for (let i = 0; i < t.length; i++) {
      if (t[i] === "\\" && /^[0-7]{3}$/.test(t.slice(i + 1, i + 4))) {
        bytes.push(Number.parseInt(t.slice(i + 1, i + 4), 8));
        i += 3;
      } else if (t[i] === "\\" && t[i + 1] === "\\") {
        bytes.push(0x5c);
        i++;
      } else bytes.push(t.charCodeAt(i));
    }
    return Buffer.from(bytes).toString("utf8");
  };
  for (const line of Buffer.from(r.stdout).toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      const abs = unescapeGetfattr(line.slice(8));
      cur = abs === root ? "/" : abs.slice(root.length);
      out.set(cur, {});
    } else if (line.includes("=") && cur) {
      const eq = line.indexOf("=");
      (out.get(cur) as Record<string, string>)[line.slice(0, eq)] = line.slice(eq + 3);
    }
  }
  return out;
}

/** Describes a directory tree on disk (a source dir or a mount point). */
export function diskView(root: string, withXattrs: boolean): Record<string, PathView> {
  const out: Record<string, PathView> = {};
  const inos = new Map<string, string>();
  const visit = (rel: string) => {
    const p = rel === "/" ? root : join(root, rel);
    const st = lstatSync(p);
    const v: PathView = { mode: st.mode, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
    const type = st.mode & S_IFMT;
    if (type !== FileMode.S_IFDIR) v.size = st.size;
    if (st.isSymbolicLink()) v.symlink = readlinkSync(p);
    if (st.isFile()) {
      v.sha256 = sha256Hex(readFileSync(p));
      inos.set(rel, String(st.ino));
    }
    if (type === FileMode.S_IFCHR || type === FileMode.S_IFBLK)
      v.rdev = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >>> 12) & 0xfff00)}`;
    out[rel] = v;
    if (st.isDirectory()) for (const n of readdirSync(p)) visit(rel === "/" ? `/${n}` : `${rel}/${n}`);
  };
  visit("/");
  for (const [p, g] of groups(inos)) (out[p] as PathView).linkGroup = g;
  if (withXattrs) for (const [p, x] of getfattrTree(root)) if (out[p] && Object.keys(x).length > 0) (out[p] as PathView).xattrs = x;
  return out;
}

/** Describes a bootstrap through the reader, file contents read from the blobs. */
export function rafsView(image: RafsImage, access: (i: number) => BlobAccess): Record<string, PathView> {
  const out: Record<string, PathView> = {};
  const nids = new Map<string, string>();
  for (const e of listTree(image)) {
    const i = e.inode;
    const type = i.mode & S_IFMT;
    const v: PathView = { mode: i.mode, uid: i.uid, gid: i.gid, mtime: i.mtime };
    if (type !== FileMode.S_IFDIR) v.size = i.size;
    if (e.symlink !== undefined) v.symlink = e.symlink;
    if (type === FileMode.S_IFREG) {
      v.sha256 = sha256Hex(readFile(image, i, access));
      nids.set(e.path, String(e.nid));
    }
    if (type === FileMode.S_IFCHR || type === FileMode.S_IFBLK) v.rdev = `${i.rdevMajor}:${i.rdevMinor}`;
    if (e.xattrs.length > 0) v.xattrs = Object.fromEntries(e.xattrs.map((x) => [x.name, Buffer.from(x.value).toString("hex")]));
    out[e.path] = v;
  }
  for (const [p, g] of groups(nids)) (out[p] as PathView).linkGroup = g;
  return out;
}

/** Drops xattrs from a view (for comparisons where one side cannot read them). */
export function withoutXattrs(v: Record<string, PathView>): Record<string, PathView> {
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, { ...x, xattrs: undefined }]));
}
