import { existsSync } from "node:fs";
import { join } from "node:path";

/** Path of the compiled executable the tests run (never the sources). */
export const RAFSNAP_BIN = process.env.RAFSNAP_BIN ?? join(import.meta.dir, "../../dist/rafsnap");

/**
 * A PATH with system directories only: no bun, no node_modules/.bin — the compiled binary
 * must run on a machine that has neither.
 */
export const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Throws a clear error when the binary has not been built (`bun run build`). */
export function requireBinary(): string {
  if (!existsSync(RAFSNAP_BIN)) throw new Error(`${RAFSNAP_BIN} is missing: run \`bun run build\` first`);
  return RAFSNAP_BIN;
}
