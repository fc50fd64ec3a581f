import { defineCommand } from "citty";
import { checkImage, inspectImage, openBootstrap } from "../convert/index.ts";

/** `rafsnap inspect BOOTSTRAP [--blobs DIR]`: superblock, blob table and file tree. */
export default defineCommand({
  meta: { name: "inspect", description: "Print a RAFS v6 bootstrap: superblock, blob table and file tree" },
  args: {
    bootstrap: { type: "positional", description: "RAFS v6 bootstrap (image.boot)", required: true },
    blobs: { type: "string", description: "directory with the blobs (named by blob id) to also verify", valueHint: "dir" },
  },
  run({ args }) {
    const image = openBootstrap(args.bootstrap);
    process.stdout.write(inspectImage(image));
    if (args.blobs) {
      const r = checkImage(image, args.blobs);
      process.stdout.write(`verified ${r.chunksVerified} chunks in ${r.blobsChecked} blobs, read ${r.bytesRead} bytes of files\n`);
    }
  },
});
