import { defineCommand } from "citty";
import { checkImage, openBootstrap } from "../convert/index.ts";

/**
 * `rafsnap check BOOTSTRAP [--blobs DIR]`: validates the structure (and, with blobs, every
 * chunk's digest and every file's data); exits non-zero naming the first inconsistency.
 */
export default defineCommand({
  meta: { name: "check", description: "Validate a RAFS v6 bootstrap (and its blobs' chunk digests)" },
  args: {
    bootstrap: { type: "positional", description: "RAFS v6 bootstrap (image.boot)", required: true },
    blobs: { type: "string", description: "directory with the blobs (named by blob id)", valueHint: "dir" },
  },
  run({ args }) {
    const r = checkImage(openBootstrap(args.bootstrap), args.blobs);
    process.stdout.write(
      `ok: ${r.paths} paths${args.blobs ? `, ${r.blobsChecked} blobs, ${r.chunksVerified} chunks verified, ${r.bytesRead} bytes of files read` : ""}\n`,
    );
  },
});
