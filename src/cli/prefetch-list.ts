import { defineCommand } from "citty";
import { loadConfig } from "../config/index.ts";
import { invalidArgument, notFound, unavailable } from "../errdefs/index.ts";
import { imageDaemon } from "../service/index.ts";
import { loadOptionsOf, snapshotterArgs } from "./_args.ts";

/**
 * `rafsnap prefetch-list --apisock SOCK [--id ID]` or `--image REF [--root R | --config F]`:
 * prints the startup working set a running `rafsnap nydusd` recorded for one of its instances
 * — absolute in-image paths in first-read order, one a line, the input of `rafsnap convert
 * --prefetch-files`. With `--image`, the daemon and instance are those `rafsnap serve` runs for
 * that image reference (read from its database). A note goes to stderr while the daemon is
 * still recording. Fails (Unavailable) when the socket does not answer, NotFound when there is
 * no such image or instance (or, without `--id`, not exactly one), InvalidArgument without
 * `--apisock` or `--image`.
 */
export default defineCommand({
  meta: { name: "prefetch-list", description: "Print the files a running rafsnap nydusd saw read first (for convert --prefetch-files)" },
  args: {
    ...snapshotterArgs,
    apisock: { type: "string", description: "API socket of the daemon", valueHint: "path" },
    id: { type: "string", description: "instance id (shared daemons: /<snapshot id>)" },
    image: { type: "string", description: "image reference: the daemon rafsnap serve runs for it (with --root or --config)", valueHint: "ref" },
  },
  async run({ args, rawArgs }) {
    let apisock = args.apisock;
    let id = args.id;
    if (args.image) {
      const { config } = await loadConfig(loadOptionsOf(args, rawArgs));
      const d = await imageDaemon(config, args.image);
      apisock = d.apiSocket;
      id = d.apiId;
    }
    if (!apisock) throw invalidArgument("name the daemon: --apisock SOCK [--id ID], or --image REF (with --root or --config)");
    const q = id ? `?id=${encodeURIComponent(id)}` : "";
    let res: Response;
    try {
      res = await fetch(`http://localhost/api/v1/rafsnap/prefetch-list${q}`, { unix: apisock, signal: AbortSignal.timeout(30_000) } as RequestInit);
    } catch (e) {
      throw unavailable(`${apisock}: ${(e as Error).message}`, e);
    }
    const text = await res.text();
    if (!res.ok) {
      let msg = text;
      try {
        msg = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON: the text as it is
      }
      if (res.status === 404) throw notFound(`${apisock}: ${msg}`);
      if (res.status === 400) throw invalidArgument(`${apisock}: ${msg}`);
      throw unavailable(`${apisock}: HTTP ${res.status}: ${msg}`);
    }
    const body = JSON.parse(text) as { recording?: boolean; files?: unknown };
    const files = Array.isArray(body.files) ? body.files.filter((f): f is string => typeof f === "string") : [];
    if (body.recording) process.stderr.write("note: the daemon is still recording; the list may grow\n");
    process.stdout.write(files.map((f) => `${f}\n`).join(""));
  },
});
