import { invalidArgument, notImplemented } from "../errdefs/index.ts";
import { RafsImage } from "./image.ts";
import { EROFS_MAGIC, EROFS_SUPER_OFFSET } from "./superblock.ts";

/** Bytes of a bootstrap {@link bootstrapVersion} looks at: the EROFS magic ends there. */
export const BOOTSTRAP_VERSION_BYTES = EROFS_SUPER_OFFSET + 4;

/**
 * The RAFS version the first bytes of a bootstrap announce: "v6" for the EROFS magic at
 * {@link EROFS_SUPER_OFFSET}, "v5" for RAFS v5's "RAFS" magic at 0, else undefined. Looks at no
 * more than {@link BOOTSTRAP_VERSION_BYTES}; proves nothing about the rest.
 */
export function bootstrapVersion(bytes: Uint8Array): "v5" | "v6" | undefined {
  if (
    bytes.length >= BOOTSTRAP_VERSION_BYTES &&
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(EROFS_SUPER_OFFSET, true) === EROFS_MAGIC
  )
    return "v6";
  if (bytes.length >= 4 && bytes[0] === 0x52 && bytes[1] === 0x41 && bytes[2] === 0x46 && bytes[3] === 0x53) return "v5";
  return undefined;
}

/**
 * The one way rafsnap opens a bootstrap's bytes: NotImplemented for RAFS v5 (convert the image
 * to v6), else {@link RafsImage.open} with its failures as InvalidArgument prefixed with `what`
 * (the file or image the bytes came from), naming the malformed field.
 */
export function openBootstrapBytes(bytes: Uint8Array, what: string): RafsImage {
  if (bootstrapVersion(bytes) === "v5") throw notImplemented(`${what}: RAFS v5 is not supported yet (convert the image to RAFS v6)`);
  try {
    return RafsImage.open(bytes);
  } catch (e) {
    throw invalidArgument(`${what}: ${(e as Error).message}`, e);
  }
}
