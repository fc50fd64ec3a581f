import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";
import {
  type ByteSource,
  type ChunkInfo,
  chunkBytes,
  decodeChunk,
  listTree,
  openBootstrapBytes,
  planRange,
  type RafsImage,
  readBlobMeta,
  readFile,
} from "../rafs/index.ts";

/** Opens a bootstrap file as an image (InvalidArgument naming the file when malformed). */
export function openBootstrap(path: string): RafsImage {
  return openBootstrapBytes(new Uint8Array(readFileSync(path)), path);
}

const modeOctal = (m: number) => (m & 0o7777).toString(8).padStart(4, "0");

/**
 * `s` safe to print on a terminal: control characters (C0, DEL, C1 — escape sequences start
 * with them) and backslashes as `\xNN` / `\u{N}` escapes; names from an image are hostile.
 */
export function printable(s: string): string {
  return s.replace(/[\\\u0000-\u001f\u007f-\u009f\u2028\u2029]/gu, (c) => {
    const n = c.codePointAt(0) as number;
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u{${n.toString(16)}}`;
  });
}
const TYPE = ["?", "p", "c", "?", "d", "?", "b", "?", "-", "?", "l", "?", "s"];

/**
 * Text like `nydus-image inspect`: superblock and extended superblock fields, the blob table,
 * then one line per path (`type+mode uid:gid size nid path [-> target] [xattrs]`).
 */
export function inspectImage(image: RafsImage): string {
  const sb = image.superblock;
  const ext = image.ext;
  const lines = [
    "superblock:",
    `  magic 0x${sb.magic.toString(16)}  block size ${sb.blockSize}  root nid ${sb.rootNid}  inodes ${sb.inos}  blocks ${sb.blocks}`,
    `  meta_blkaddr ${sb.metaBlkaddr}  feature_compat 0x${sb.featureCompat.toString(16)}  feature_incompat 0x${sb.featureIncompat.toString(16)}  extra_devices ${sb.extraDevices}`,
    "extended superblock:",
    `  flags 0x${ext.flags.toString(16)}  chunk size 0x${ext.chunkSize.toString(16)}  blob table ${ext.blobTableOffset}+${ext.blobTableSize}  chunk table ${ext.chunkTableOffset}+${ext.chunkTableSize}`,
    `blobs (${image.blobs.length}):`,
    ...image.blobs.map(
      (b) =>
        `  [${b.blobIndex}] ${b.blobId}  compressor ${b.compressor}  digester ${b.digester}  chunks ${b.chunkCount} × 0x${b.chunkSize.toString(16)}  compressed ${b.compressedSize}  uncompressed ${b.uncompressedSize}  features 0x${b.features.toString(16)}`,
    ),
    "tree:",
  ];
  for (const e of listTree(image)) {
    const i = e.inode;
    const t = TYPE[(i.mode >> 12) & 0xf] ?? "?";
    const x = e.xattrs.length ? `  xattrs ${e.xattrs.map((a) => printable(a.name)).join(",")}` : "";
    const target = e.symlink !== undefined ? ` -> ${printable(e.symlink)}` : "";
    lines.push(
      `  ${t}${modeOctal(i.mode)} ${i.uid}:${i.gid} ${String(i.size).padStart(10)} nid ${String(e.nid).padStart(5)} ${printable(e.path)}${target}${x}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function fileSource(path: string): { src: ByteSource; close(): void } {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size;
  return {
    src: {
      size,
      readAt(offset, length) {
        const out = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const n = readSync(fd, out, done, length - done, offset + done);
          if (n === 0) throw invalidArgument(`${path}: read ${offset}+${length} past the end (${size} bytes)`);
          done += n;
        }
        return out;
      },
    },
    close: () => closeSync(fd),
  };
}

/** What {@link checkImage} verified. */
export interface CheckReport {
  paths: number;
  blobsChecked: number;
  chunksVerified: number;
  bytesRead: number;
}

/**
 * Validates an image: every inode, directory, symlink and chunk index of the tree; with
 * `blobsDir`, also every blob's CI table against the bootstrap, every chunk decompressed and
 * verified against the chunk table's digest, and every regular file read in full. Throws the
 * first inconsistency as InvalidArgument naming it (field and offset, or blob and chunk).
 */
export function checkImage(image: RafsImage, blobsDir?: string): CheckReport {
  const tree = listTree(image);
  const report: CheckReport = { paths: tree.length, blobsChecked: 0, chunksVerified: 0, bytesRead: 0 };
  if (!blobsDir) return report;
  const opened = image.blobs.map((b) => {
    const f = fileSource(join(blobsDir, b.blobId));
    return { blob: b, f, meta: readBlobMeta(f.src, b) };
  });
  try {
    for (const { blob, f, meta } of opened) {
      const digests = new Map(image.chunkTable.filter((e) => e.blobIndex === blob.blobIndex).map((e) => [e.ciIndex, e.digest]));
      for (const c of meta.chunks as ChunkInfo[]) {
        const plan = planRange(blob, meta.chunks, c.uncompressedOffset, c.uncompressedSize);
        const fetch = plan.fetches.find((x) => x.chunks.some((y) => y.ciIndex === c.ciIndex));
        if (!fetch) continue;
        const bytes = f.src.readAt(fetch.offset, fetch.length);
        decodeChunk(blob, c, chunkBytes(fetch, bytes, c), { expectedDigest: digests.get(c.ciIndex) });
        report.chunksVerified++;
      }
      report.blobsChecked++;
    }
    const access = (i: number) => {
      const o = opened[i];
      if (!o) throw invalidArgument(`blob index ${i} is not in the blob table`);
      return { blob: o.blob, src: o.f.src, chunks: o.meta.chunks };
    };
    for (const e of tree) {
      if ((e.inode.mode & 0o170000) !== 0o100000) continue;
      report.bytesRead += readFile(image, e.inode, access).length;
    }
  } finally {
    for (const o of opened) o.f.close();
  }
  return report;
}
