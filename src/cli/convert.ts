import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { readPrefetchListFile } from "../convert/index.ts";
import { convertImage, parsePlatform } from "../convert/index.ts";
import { invalidArgument } from "../errdefs/index.ts";
import { silentLogger } from "../log/index.ts";

const COMPRESSORS = ["zstd", "lz4_block", "none"] as const;

/**
 * `rafsnap convert --source REF --target REF`: OCI image → nydus (RAFS v6) image, registry to
 * registry. Credentials come from the docker config (`$DOCKER_CONFIG/config.json` or
 * `~/.docker/config.json`). Progress goes to stderr (one line per layer; updated in place on a terminal); the
 * pushed digest to stdout.
 */
export default defineCommand({
  meta: { name: "convert", description: "Convert an OCI image in a registry into a nydus image in a registry" },
  args: {
    source: { type: "string", required: true, description: "OCI image reference to convert", valueHint: "ref" },
    target: { type: "string", required: true, description: "reference to push the nydus image to", valueHint: "ref" },
    "plain-http": { type: "boolean", description: "use http:// (loopback registries do unless --tls)" },
    tls: { type: "boolean", description: "use https:// also for loopback registries" },
    "ca-cert": { type: "string", description: "PEM file of a CA to trust (implies --tls)", valueHint: "file" },
    "skip-verify": { type: "boolean", description: "do not verify the registry's certificate (implies --tls)" },
    compressor: { type: "string", default: "zstd", description: "chunk compression: zstd | lz4_block | none" },
    "chunk-size": { type: "string", default: "0x100000", description: "chunk size, a power of two from 0x1000 to 0x1000000" },
    "merge-platform": { type: "boolean", description: "push an index with the OCI and the nydus manifest" },
    platform: { type: "string", description: "platform to convert from an index (default: this machine's)", valueHint: "os/arch" },
    concurrency: { type: "string", default: "2", description: "layers converted at once" },
    "prefetch-files": {
      type: "string",
      description:
        "file listing the startup working set, one absolute path a line (rafsnap prefetch-list): written as the prefetch table, laid out first in each blob",
      valueHint: "file",
    },
    "prefetch-patterns": { type: "string", description: "as --prefetch-files; a directory listed stands for everything below it", valueHint: "file" },
  },
  async run({ args }) {
    const compressor = args.compressor;
    if (!(COMPRESSORS as readonly string[]).includes(compressor)) {
      throw invalidArgument(`--compressor ${JSON.stringify(compressor)}: one of ${COMPRESSORS.join(", ")}`);
    }
    const chunkSize = Number(args["chunk-size"]);
    if (!Number.isInteger(chunkSize)) throw invalidArgument(`--chunk-size ${JSON.stringify(args["chunk-size"])} is not a number`);
    const concurrency = Number(args.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw invalidArgument(`--concurrency ${JSON.stringify(args.concurrency)} must be a positive integer`);
    const prefetch = [
      ...(args["prefetch-files"] ? readPrefetchListFile(args["prefetch-files"], "--prefetch-files") : []),
      ...(args["prefetch-patterns"] ? readPrefetchListFile(args["prefetch-patterns"], "--prefetch-patterns") : []),
    ];
    const tty = process.stderr.isTTY === true;
    const t0 = performance.now();
    let total = 0;
    const result = await convertImage({
      source: args.source,
      target: args.target,
      plainHttp: args["plain-http"],
      tls:
        args.tls || args["ca-cert"] || args["skip-verify"]
          ? { caCert: args["ca-cert"] ? readFileSync(args["ca-cert"], "utf8") : undefined, skipVerify: args["skip-verify"] }
          : undefined,
      compressor: compressor as (typeof COMPRESSORS)[number],
      chunkSize,
      mergePlatform: args["merge-platform"],
      platform: args.platform ? parsePlatform(args.platform) : undefined,
      concurrency,
      prefetch: prefetch.length > 0 ? prefetch : undefined,
      logger: silentLogger(), // progress goes to stderr below; stdout carries only the digest
      onLayer: (e) => {
        total += e.bytes;
        const secs = (performance.now() - t0) / 1000;
        const line = `layer ${e.index + 1}/${e.count}: ${(e.bytes / 2 ** 20).toFixed(1)} MiB in ${e.seconds.toFixed(1)} s → ${e.blob.digest}; total ${(total / 2 ** 20).toFixed(1)} MiB, ${(total / 2 ** 20 / Math.max(secs, 0.001)).toFixed(1)} MiB/s`;
        process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      },
    });
    if (tty) process.stderr.write("\n");
    if (prefetch.length > 0 && result.prefetchEntries < new Set(prefetch).size) {
      process.stderr.write(
        `warning: ${new Set(prefetch).size - result.prefetchEntries} of the ${new Set(prefetch).size} prefetch paths are not in the image (or repeat an inode) and were left out of the prefetch table\n`,
      );
    }
    process.stdout.write(`${result.digest}\n`);
  },
});
