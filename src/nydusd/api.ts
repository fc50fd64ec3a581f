import { prepareSocketPath, serveHttpUnix } from "../mount/index.ts";
import { ErrorKind, invalidArgument, kindOf, notFound, notImplemented } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import type { DaemonState } from "./state.ts";

/** `GET /api/v1/daemon`: what nydusd reports about itself. */
export interface DaemonInfo {
  version: { package_ver: string; git_commit: string; build_time: string; profile: string; rustc: string };
  id: string | null;
  supervisor: string | null;
  state: DaemonState;
  backend_collection: Record<string, unknown> | null;
}

/** Body of `POST|PUT /api/v1/mount`. */
export interface MountRequest {
  fs_type: string;
  source: string;
  /** The instance's nydusd config, as a JSON string. */
  config: string;
  prefetch_files?: string[];
}

/**
 * What the HTTP API asks of the daemon. Methods throw RafsnapErrors; their kind picks the
 * HTTP status (see {@link statusOf}).
 */
export interface DaemonApi {
  info(): DaemonInfo;
  setLogLevel(level: string): void;
  start(): Promise<void>;
  exit(): Promise<void>;
  sendFd(): Promise<void>;
  takeover(): Promise<void>;
  mount(mountpoint: string, req: MountRequest): Promise<void>;
  remount(mountpoint: string, req: MountRequest): Promise<void>;
  umount(mountpoint: string): Promise<void>;
  /** FsIoStats of instance `id` (or of the only instance). */
  fsMetrics(id: string | undefined): object;
  blobcacheMetrics(id: string | undefined): object;
  backendMetrics(id: string | undefined): object;
  /** Requests in flight; an empty list answers 204. */
  inflight(): object[];
  getConfig(id: string | undefined): object;
  /** rafsnap's own: the recorded startup working set of instance `id` (or of the only one). */
  prefetchList(id: string | undefined): object;
  putConfig(id: string | undefined, body: Record<string, unknown>): void;
}

/**
 * The HTTP status nydusd uses for an error of this kind (§5): bad input and unexpected state
 * transitions 400, missing things 404, not ready 503, unsupported 501, anything else 500.
 */
export function statusOf(err: unknown): number {
  switch (kindOf(err)) {
    case ErrorKind.InvalidArgument:
    case ErrorKind.FailedPrecondition:
      return 400;
    case ErrorKind.NotFound:
      return 404;
    case ErrorKind.Unavailable:
      return 503;
    case ErrorKind.NotImplemented:
      return 501;
    default:
      return 500;
  }
}

const HEADERS = { server: "Nydus API", "content-type": "application/json" };
const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: HEADERS });
const noContent = () => new Response(null, { status: 204, headers: { server: "Nydus API" } });

async function bodyOf(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.trim() === "") throw invalidArgument("request body is empty");
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw invalidArgument(`request body is not a JSON object: ${(e as Error).message}`);
  }
}

function mountRequestOf(b: Record<string, unknown>): MountRequest {
  for (const k of ["fs_type", "source", "config"] as const) {
    if (typeof b[k] !== "string") throw invalidArgument(`mount request: ${k} must be a string`);
  }
  const pf = b.prefetch_files;
  if (pf !== undefined && !(Array.isArray(pf) && pf.every((x) => typeof x === "string"))) {
    throw invalidArgument("mount request: prefetch_files must be a list of strings");
  }
  return { fs_type: b.fs_type as string, source: b.source as string, config: b.config as string, prefetch_files: pf as string[] | undefined };
}

function mountpointOf(url: URL): string {
  const m = url.searchParams.get("mountpoint");
  if (!m) throw invalidArgument("query parameter mountpoint is required");
  return m;
}

/** Routes one request to the daemon; errors become `{"code","message"}` with §5's statuses. */
export async function route(api: DaemonApi, req: Request): Promise<Response> {
  const url = new URL(req.url);
  const id = url.searchParams.get("id") ?? undefined;
  const key = `${req.method} ${url.pathname.replace(/\/+$/, "")}`;
  switch (key) {
    case "GET /api/v1/daemon":
      return json(api.info());
    case "GET /api/v2/daemon": {
      const { backend_collection: _, ...rest } = api.info();
      return json(rest);
    }
    case "PUT /api/v1/daemon": {
      const b = await bodyOf(req);
      if (typeof b.log_level !== "string") throw invalidArgument("log_level must be a string");
      api.setLogLevel(b.log_level);
      return noContent();
    }
    case "GET /api/v1/daemon/events":
      return json([]);
    case "GET /api/v1/daemon/backend":
      return json(api.backendMetrics(url.searchParams.get("mountpoint") ?? undefined));
    case "PUT /api/v1/daemon/start":
      await api.start();
      return noContent();
    case "PUT /api/v1/daemon/exit":
      await api.exit();
      return noContent();
    case "PUT /api/v1/daemon/fuse/sendfd":
      await api.sendFd();
      return noContent();
    case "PUT /api/v1/daemon/fuse/takeover":
      await api.takeover();
      return noContent();
    case "POST /api/v1/mount":
      await api.mount(mountpointOf(url), mountRequestOf(await bodyOf(req)));
      return noContent();
    case "PUT /api/v1/mount":
      await api.remount(mountpointOf(url), mountRequestOf(await bodyOf(req)));
      return noContent();
    case "DELETE /api/v1/mount":
      await api.umount(mountpointOf(url));
      return noContent();
    case "GET /api/v1/metrics":
      return json(api.fsMetrics(id));
    case "GET /api/v1/metrics/blobcache":
      return json(api.blobcacheMetrics(id));
    case "GET /api/v1/metrics/backend":
      return json(api.backendMetrics(id));
    case "GET /api/v1/metrics/inflight": {
      const list = api.inflight();
      return list.length ? json(list) : noContent();
    }
    case "GET /api/v1/metrics/files":
    case "GET /api/v1/metrics/pattern":
      return json([]);
    case "GET /api/v1/rafsnap/prefetch-list":
      return json(api.prefetchList(id));
    case "GET /api/v1/config":
      return json(api.getConfig(id));
    case "PUT /api/v1/config":
      api.putConfig(id, await bodyOf(req));
      return noContent();
    case "PUT /api/v2/blobs":
    case "GET /api/v2/blobs":
    case "DELETE /api/v2/blobs":
      throw notImplemented("fscache blob binding is not supported: the kernel has no cachefiles on-demand mode; use fs_driver fusedev");
    default:
      throw notFound(`NoRoute: ${req.method} ${url.pathname}`);
  }
}

/** A running API server. */
export interface ApiServer {
  path: string;
  stop(): void;
}

/**
 * Serves the nydusd HTTP API on the unix socket `path` (mode 0600). A stale socket file is
 * replaced; a live one or any other file there is FailedPrecondition. Idle keep-alive connections (the
 * snapshotter holds one for liveness) are kept.
 */
export async function startApiServer(path: string, api: DaemonApi, logger: Logger): Promise<ApiServer> {
  const log = logger.withTag("api");
  await prepareSocketPath(path, "API socket", 0o755);
  // Mode 0600 from the start: bound in a private directory, then renamed into place.
  const server = await serveHttpUnix(
    path,
    0o600,
    (req) => route(api, req),
    (err, req) => {
      const status = statusOf(err);
      const message = err instanceof Error ? err.message : String(err);
      if (status >= 500) log.warn(`${req.method} ${new URL(req.url).pathname}: ${message}`);
      return json({ code: "UNDEFINED", message }, status);
    },
  );
  return { path, stop: () => server.stop(true) };
}
