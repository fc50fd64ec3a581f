// Facts about the test images that test/images/build-image.sh writes (OCI layouts).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The build script: `bash build-image.sh OUT [REGISTRY_HOST]`. */
export const BUILD_IMAGES = join(import.meta.dir, "../images/build-image.sh");
/** The line /data/hello of multi:v1 holds (its Cmd prints it). */
export const HELLO = "hello from rafsnap multi layer 3";

/** Reads the `NAME:TAG DIGEST` lines written by build-image.sh into `dir/digests.txt`. */
export function digests(dir: string): Map<string, string> {
  const lines = readFileSync(join(dir, "digests.txt"), "utf8").trim().split("\n");
  return new Map(lines.map((l) => l.split(" ") as [string, string]));
}

/** containerd chain IDs of an OCI layout's image (identity.ChainIDs over the config's diff_ids). */
export function chainIds(layout: string): string[] {
  const blob = (d: string) => JSON.parse(readFileSync(join(layout, "blobs/sha256", d.replace("sha256:", "")), "utf8"));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const manifest = blob(index.manifests[0].digest);
  const diffIds: string[] = blob(manifest.config.digest).rootfs.diff_ids;
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out.at(-1);
    out.push(prev ? `sha256:${createHash("sha256").update(`${prev} ${d}`).digest("hex")}` : d);
  }
  return out;
}

/**
 * A shell script for `ctr run` that checks multi:v1's merged tree — whiteout, opaque dir,
 * symlink, hard link, setuid — then prints the hello line and `okLine`. Exits non-zero at the
 * first check that fails.
 */
export function mergedTreeScript(okLine: string): string {
  return [
    "set -e",
    "test ! -e /data/gone",
    "test ! -e /data/old/file",
    "test -f /data/old/new",
    'test "$(readlink /data/link)" = dir/a',
    'test "$(cat /data/link)" = "a from layer 1"',
    'test "$(stat -c %i /data/hl)" = "$(stat -c %i /data/hl-src)"',
    'test "$(stat -c %h /data/hl)" = 2',
    'test "$(cat /data/hl)" = "hl-src from layer 2"',
    "test -u /data/setuid",
    'test "$(stat -c %a /data/setuid)" = 4755',
    "cat /data/hello",
    `echo ${okLine}`,
  ].join("\n");
}
