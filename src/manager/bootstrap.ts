import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../cache/index.ts";
import { failedPrecondition } from "../errdefs/index.ts";
import { RafsImage } from "../rafs/index.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where the bootstrap layer's tar puts the bootstrap (legacy location second; §4.2). */
export function bootstrapPath(snapshotDir: string): string {
  const modern = join(snapshotDir, "fs", "image", "image.boot");
  if (existsSync(modern)) return modern;
  const legacy = join(snapshotDir, "fs", "image.boot");
  return existsSync(legacy) ? legacy : modern;
}

/**
 * Opens the bootstrap at `path` and returns the ids of the blobs it reads. FailedPrecondition
 * naming the file and the fix when it is missing or not a valid RAFS v6 bootstrap (the
 * malformed field comes from the reader).
 */
export function bootstrapBlobIds(path: string, imageRef: string): string[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw failedPrecondition(
      `bootstrap ${path} of image ${imageRef} is missing (${(e as NodeJS.ErrnoException).code}); remove the image and pull it again`,
    );
  }
  try {
    return RafsImage.open(bytes).blobs.map((b) => b.blobId);
  } catch (e) {
    throw failedPrecondition(`bootstrap ${path} of image ${imageRef} is not a valid RAFS v6 bootstrap: ${(e as Error).message}; remove the image and pull it again`);
  }
}

/**
 * Validates the bootstrap and returns its blob ids; when it does not validate yet, waits until
 * it is stable (§4.2: the same size and `*.blob.meta` list twice in a row, 20 × 50 ms at most)
 * — a writer may still be at it — and validates again. Errors as {@link bootstrapBlobIds}.
 */
export async function stableBootstrap(path: string, imageRef: string): Promise<string[]> {
  // The usual case: containerd committed the bootstrap layer before the container's Prepare,
  // so the file is complete and valid now. Only a file that does not validate yet is waited on.
  try {
    return bootstrapBlobIds(path, imageRef);
  } catch {}
  const sig = () => {
    try {
      const dir = join(path, "..");
      return `${statSync(path).size}|${readdirSync(dir).filter((n) => n.endsWith(".blob.meta")).sort().join(",")}`;
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
  return bootstrapBlobIds(path, imageRef);
}

/**
 * Copies the `*.blob.meta` files that sit next to the bootstrap into the cache directory
 * (temp file + rename), unless the cache already has them (§4.2).
 */
export function copyBlobMeta(bootstrap: string, cacheDir: string): void {
  const dir = join(bootstrap, "..");
  for (const name of readdirSync(dir)) {
    if (!name.endsWith(".blob.meta")) continue;
    const dst = join(cacheDir, name);
    if (existsSync(dst)) continue;
    writeFileAtomic(dst, readFileSync(join(dir, name)));
  }
}

/** `fs_version` of the `extraoption` JSON from the bootstrap's magic: v6 at 1024, else v5. */
export function fsVersion(path: string): "v5" | "v6" {
  try {
    const b = readFileSync(path);
    if (b.length >= 1028 && b.readUInt32LE(1024) === 0xe0f5e1e2) return "v6";
  } catch {}
  return "v5";
}
