/**
 * The bootstrap layer's files, read as untrusted input: `image/image.boot` (or the legacy
 * `image.boot`) and `*.blob.meta` are opened beneath the snapshot's `fs` directory without
 * following links, must be regular files, and are size-capped (src/sys). An image that ships
 * anything else is refused naming the image and the rule, never what the link pointed at.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { cacheFiles, writeFileAtomic } from "../cache/index.ts";
import { failedPrecondition, RafsnapError } from "../errdefs/index.ts";
import { BOOTSTRAP_VERSION_BYTES, type BlobEntry, bootstrapVersion, checkBlobMetaFile, isBlobId, openBootstrapBytes, type RafsImage } from "../rafs/index.ts";
import { MAX_BLOB_META_BYTES, MAX_BOOTSTRAP_BYTES } from "../nydusd/index.ts";
import { LayerFileError, readBeneath } from "../sys/index.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const MODERN = "image/image.boot";
const LEGACY = "image.boot";

/** Where the bootstrap layer's tar puts the bootstrap (legacy location second; §4.2). */
export function bootstrapPath(snapshotDir: string): string {
  return join(snapshotDir, "fs", bootstrapRel(snapshotDir));
}

/** The bootstrap's path relative to `<snapshotDir>/fs`: the modern one unless only the legacy one exists. */
function bootstrapRel(snapshotDir: string): string {
  const present = (rel: string) => {
    try {
      lstatSync(join(snapshotDir, "fs", rel));
      return true;
    } catch {
      return false;
    }
  };
  return present(MODERN) || !present(LEGACY) ? MODERN : LEGACY;
}

/**
 * The bootstrap's bytes (its first `upTo`, when given), opened beneath `<snapshotDir>/fs`
 * without following links.
 * FailedPrecondition naming the image, the file and the rule when it is missing, a link, not a
 * regular file or larger than {@link MAX_BOOTSTRAP_BYTES}.
 */
export function readBootstrap(snapshotDir: string, imageRef: string, upTo?: number): Uint8Array {
  const rel = bootstrapRel(snapshotDir);
  try {
    return readBeneath(join(snapshotDir, "fs"), rel, `the bootstrap of image ${imageRef}:`, MAX_BOOTSTRAP_BYTES, upTo);
  } catch (e) {
    if (e instanceof LayerFileError) throw failedPrecondition(`${e.message}; remove the image and pull it again`, e);
    throw e;
  }
}

/** The bootstrap parsed; FailedPrecondition when it is not a valid RAFS v6 bootstrap. */
function parseBootstrap(bytes: Uint8Array, snapshotDir: string, imageRef: string): RafsImage {
  try {
    return openBootstrapBytes(bytes, `bootstrap ${bootstrapPath(snapshotDir)} of image ${imageRef}`);
  } catch (e) {
    // The snapshot holds it: what can be done is pulling the image again.
    throw failedPrecondition(`${(e as Error).message}; remove the image and pull it again`, e);
  }
}

/**
 * Opens the bootstrap of the image unpacked in `snapshotDir` (see {@link readBootstrap}) and
 * returns its blob table. FailedPrecondition naming the image and the fix when it is missing,
 * refused, or not a valid RAFS v6 bootstrap (the malformed field comes from the reader).
 */
export function bootstrapBlobs(snapshotDir: string, imageRef: string): readonly BlobEntry[] {
  return parseBootstrap(readBootstrap(snapshotDir, imageRef), snapshotDir, imageRef).blobs;
}

/** The ids of the blobs the image's bootstrap reads (errors as {@link bootstrapBlobs}). */
export function bootstrapBlobIds(snapshotDir: string, imageRef: string): string[] {
  return bootstrapBlobs(snapshotDir, imageRef).map((b) => b.blobId);
}

/**
 * Validates the bootstrap and returns its blob table; when it does not validate yet, waits
 * until it is stable (§4.2: the same size and `*.blob.meta` list twice in a row, 20 × 50 ms at
 * most) — a writer may still be at it — and validates again. A refused file (a link, a special
 * file) is refused at once. Errors as {@link bootstrapBlobs}.
 */
export async function stableBootstrap(snapshotDir: string, imageRef: string): Promise<readonly BlobEntry[]> {
  // The usual case: containerd committed the bootstrap layer before the container's Prepare,
  // so the file is complete and valid now. Only a file that does not validate yet is waited on.
  try {
    return bootstrapBlobs(snapshotDir, imageRef);
  } catch (e) {
    // A link, special or oversized file does not become acceptable by waiting.
    const cause = (e as Error).cause;
    if (!(e instanceof RafsnapError) || (cause instanceof LayerFileError && cause.reason !== "missing")) throw e;
  }
  const sig = () => {
    try {
      const path = bootstrapPath(snapshotDir);
      return `${lstatSync(path).size}|${readdirSync(join(path, ".."))
        .filter((n) => n.endsWith(".blob.meta"))
        .sort()
        .join(",")}`;
    } catch {
      return "";
    }
  };
  let last = sig();
  for (let i = 0; i < 20; i++) {
    await sleep(50);
    const now = sig();
    if (now !== "" && now === last) break;
    last = now;
  }
  return bootstrapBlobs(snapshotDir, imageRef);
}

/**
 * Copies the `<blob id>.blob.meta` files the image ships next to its bootstrap into the cache
 * directory (temp file + rename) — only for blobs of this image's own blob table, only regular
 * files beneath the layer, and only when the file's CI header and table agree with that blob's
 * entry (src/rafs `checkBlobMetaFile`); anything else is skipped (the daemon then fetches the
 * CI table from the blob itself). A cached file is never replaced here. Returns the names of
 * the files skipped, with why, for the caller to log.
 */
export function copyBlobMeta(snapshotDir: string, blobs: readonly BlobEntry[], cacheDir: string): string[] {
  const fsDir = join(snapshotDir, "fs");
  const relDir = bootstrapRel(snapshotDir).includes("/") ? "image" : "";
  const skipped: string[] = [];
  for (const entry of blobs) {
    if (!isBlobId(entry.blobId)) continue;
    const rel = relDir ? `${relDir}/${entry.blobId}.blob.meta` : `${entry.blobId}.blob.meta`;
    const dst = cacheFiles(cacheDir, entry.blobId).meta;
    try {
      lstatSync(dst);
      continue;
    } catch {}
    let bytes: Uint8Array;
    try {
      bytes = readBeneath(fsDir, rel, "blob meta", MAX_BLOB_META_BYTES);
    } catch (e) {
      if (e instanceof LayerFileError && e.reason === "missing") continue;
      skipped.push(`${rel}: ${(e as Error).message}`);
      continue;
    }
    const problem = checkBlobMetaFile(bytes, entry);
    if (problem) {
      skipped.push(`${rel}: ${problem}`);
      continue;
    }
    writeFileAtomic(dst, bytes);
  }
  return skipped;
}

/** Bytes of a bootstrap {@link fsVersion} looks at. */
export const FS_VERSION_BYTES = BOOTSTRAP_VERSION_BYTES;

/** `fs_version` of the `extraoption` JSON from the bootstrap's magic: v6, else v5 (as nydus). */
export function fsVersion(bytes: Uint8Array): "v5" | "v6" {
  return bootstrapVersion(bytes) === "v6" ? "v6" : "v5";
}
