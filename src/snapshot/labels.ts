import { invalidArgument } from "../errdefs/index.ts";
import { Label } from "../labels/index.ts";

export { Label } from "../labels/index.ts";

/**
 * The blob ids an image may read (lowercase hex): the digests of its data layers (`layers`:
 * the labels of the snapshots below its bootstrap layer, nearest first) and the reference
 * blob ids its bootstrap layer declares (`meta`: that layer's labels). A layer without a
 * digest label adds nothing; a malformed declaration adds nothing.
 */
export function imageBlobIds(meta: Record<string, string>, layers: Record<string, string>[]): string[] {
  const out = new Set<string>();
  for (const l of layers) {
    const d = l[Label.CRILayerDigest];
    if (Label.NydusDataLayer in l && d && /^sha256:[0-9a-f]{64}$/.test(d)) out.add(d.slice(7));
  }
  try {
    const refs = JSON.parse(meta[Label.NydusReferenceBlobIds] ?? "[]") as unknown;
    if (Array.isArray(refs)) for (const r of refs) if (typeof r === "string" && /^[0-9a-f]{64}$/.test(r)) out.add(r);
  } catch {
    // not a JSON list: declares nothing
  }
  return [...out];
}

/** containerd's limit on one label: key and value together at most 4096 bytes. */
export const MAX_LABEL_BYTES = 4096;

/**
 * Checks labels as containerd's `labels.Validate` does: each key plus value at most
 * {@link MAX_LABEL_BYTES} bytes (UTF-8), and keys non-empty. Throws InvalidArgument naming
 * the snapshot and the (truncated) label key.
 */
export function validateLabels(snapshot: string, labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === "") throw invalidArgument(`snapshot ${JSON.stringify(snapshot)}: empty label key`);
    const size = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > MAX_LABEL_BYTES) {
      throw invalidArgument(
        `snapshot ${JSON.stringify(snapshot)}: label ${JSON.stringify(k.slice(0, 64))} key and value are ${size} bytes, more than the maximum ${MAX_LABEL_BYTES}`,
      );
    }
  }
}

/** True when the caller asked for volatile overlay mounts. */
export const wantsVolatile = (labels: Record<string, string>) => Label.OverlayVolatile in labels;
