import { invalidArgument } from "../errdefs/index.ts";

/**
 * Prefetch file lists per image reference, as the system controller's `PUT /api/v1/prefetch`
 * receives them from the prefetch NRI plugin (docs/compat.md §7): image ref → path of a file that
 * lists the paths to prefetch. The next dedicated daemon started for that image gets
 * `--prefetch-files <path>`, and the entry is used up. Kept in memory only (lost on restart,
 * as in nydus-snapshotter).
 */
export class PrefetchLists {
  private readonly byImage = new Map<string, string>();

  /**
   * Records the entries of a request body: a JSON array of `{"image": <ref>, "prefetch":
   * <path>}`. A later entry for the same image replaces the earlier one. InvalidArgument for
   * a body of any other shape (nothing is recorded then).
   */
  set(body: unknown): void {
    if (!Array.isArray(body)) throw invalidArgument('prefetch: the body must be a JSON array of {"image", "prefetch"}');
    const entries: [string, string][] = [];
    for (const e of body as unknown[]) {
      const o = e as { image?: unknown; prefetch?: unknown } | null;
      if (typeof o?.image !== "string" || o.image === "" || typeof o.prefetch !== "string") {
        throw invalidArgument("prefetch: each entry needs the strings image and prefetch");
      }
      entries.push([o.image, o.prefetch]);
    }
    for (const [image, path] of entries) this.byImage.set(image, path);
  }

  /** The list file recorded for `image`, removed from the lists; undefined when none. */
  take(image: string): string | undefined {
    const path = this.byImage.get(image);
    this.byImage.delete(image);
    return path || undefined;
  }

  /** How many images have a list waiting. */
  get size(): number {
    return this.byImage.size;
  }
}
