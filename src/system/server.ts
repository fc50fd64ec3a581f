import { rmSync } from "node:fs";
import { ErrorKind, invalidArgument, kindOf, notFound } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { prepareSocketPath, serveHttpUnix } from "../mount/index.ts";
import type { SystemController, UpgradeRequest } from "./controller.ts";

/** The error body, in nydus-snapshotter's shape (its code is always "Unknown"). */
export interface ErrorBody {
  code: string;
  message: string;
}

/**
 * The HTTP status of an error of the system API — the one place kinds become statuses: bad
 * input 400, unknown daemon 404, a precondition not met (no failover, version mismatch) 412,
 * busy or daemon down 503, not built 501, anything else 500.
 */
export function statusOf(err: unknown): number {
  switch (kindOf(err)) {
    case ErrorKind.InvalidArgument:
      return 400;
    case ErrorKind.NotFound:
      return 404;
    case ErrorKind.FailedPrecondition:
      return 412;
    case ErrorKind.Unavailable:
      return 503;
    case ErrorKind.NotImplemented:
      return 501;
    case ErrorKind.DeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** The request body as JSON; InvalidArgument when it is not. */
async function jsonBody(req: Request): Promise<unknown> {
  const text = await req.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`request body is not JSON: ${(e as Error).message}`);
  }
}

/** Routes one request of the system API (docs/compat.md §7) to the controller. */
export async function route(c: SystemController, req: Request): Promise<Response> {
  const path = new URL(req.url).pathname.replace(/\/+$/, "");
  const backend = /^\/api\/v1\/daemons\/([^/]+)\/backend$/.exec(path);
  if (backend && req.method === "GET") return json(c.backend(decodeURIComponent(backend[1] as string)));
  switch (`${req.method} ${path}`) {
    case "GET /api/v1/daemons":
      return json(await c.daemons());
    case "PUT /api/v1/daemons/upgrade":
      await c.upgrade((await jsonBody(req)) as UpgradeRequest);
      return new Response(null, { status: 200 });
    case "GET /api/v1/daemons/records":
      return json({ code: "Unknown", message: "not implemented" } satisfies ErrorBody, 501);
    case "PUT /api/v1/prefetch":
      c.setPrefetch(await jsonBody(req));
      return new Response(null, { status: 200 });
    default:
      throw notFound(`no route for ${req.method} ${path}`);
  }
}

/** A running system API server. */
export interface SystemServer {
  readonly path: string;
  stop(): Promise<void>;
}

/**
 * Serves the system controller's HTTP API on the unix socket `path`, mode 0600 from its first
 * moment and owned by `owner` (`[system] uid/gid`). A stale socket there is replaced; a live
 * one, or another kind of file, is FailedPrecondition; `stop` removes the socket. Errors answer `{"code","message"}` with
 * {@link statusOf}'s status.
 */
export async function serveSystem(path: string, c: SystemController, owner: { uid: number; gid: number }, logger: Logger): Promise<SystemServer> {
  const log = logger.withTag("system");
  await prepareSocketPath(path, "[system] address", 0o711);
  const server = await serveHttpUnix(
    path,
    0o600,
    (req) => route(c, req),
    (err, req) => {
      const status = statusOf(err);
      const message = err instanceof Error ? err.message : String(err);
      if (status >= 500) log.warn(`${req.method} ${new URL(req.url).pathname}: ${message}`);
      return json({ code: "Unknown", message } satisfies ErrorBody, status);
    },
    owner,
  );
  log.info(`system controller on ${path}`);
  return {
    path,
    async stop() {
      await server.stop(true);
      rmSync(path, { force: true });
    },
  };
}
