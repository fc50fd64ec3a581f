import { defineCommand } from "citty";
import { invalidArgument, notFound, unavailable } from "../errdefs/index.ts";

/**
 * `rafsnap prefetch-list --apisock SOCK [--id ID]`: prints the startup working set a running
 * `rafsnap nydusd` recorded for one of its instances — absolute in-image paths in first-read
 * order, one a line, the input of `rafsnap convert --prefetch-files`. A note goes to stderr
 * while the daemon is still recording. Fails (Unavailable) when the socket does not answer,
 * NotFound when there is no such instance (or, without `--id`, not exactly one).
 */
export default defineCommand({
  meta: { name: "prefetch-list", description: "Print the files a running rafsnap nydusd saw read first (for convert --prefetch-files)" },
  args: {
    apisock: { type: "string", required: true, description: "API socket of the daemon", valueHint: "path" },
    id: { type: "string", description: "instance id (shared daemons: /<snapshot id>)" },
  },
  async run({ args }) {
    const q = args.id ? `?id=${encodeURIComponent(args.id)}` : "";
    let res: Response;
    try {
      res = await fetch(`http://localhost/api/v1/rafsnap/prefetch-list${q}`, { unix: args.apisock, signal: AbortSignal.timeout(30_000) } as RequestInit);
    } catch (e) {
      throw unavailable(`${args.apisock}: ${(e as Error).message}`, e);
    }
    const text = await res.text();
    if (!res.ok) {
      let msg = text;
      try {
        msg = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON: the text as it is
      }
      if (res.status === 404) throw notFound(`${args.apisock}: ${msg}`);
      if (res.status === 400) throw invalidArgument(`${args.apisock}: ${msg}`);
      throw unavailable(`${args.apisock}: HTTP ${res.status}: ${msg}`);
    }
    const body = JSON.parse(text) as { recording?: boolean; files?: unknown };
    const files = Array.isArray(body.files) ? body.files.filter((f): f is string => typeof f === "string") : [];
    if (body.recording) process.stderr.write("note: the daemon is still recording; the list may grow\n");
    process.stdout.write(files.map((f) => `${f}\n`).join(""));
  },
});
