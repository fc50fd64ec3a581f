import { RafsnapError, ErrorKind, unavailable } from "../errdefs/index.ts";

/** What `GET /api/v1/daemon` answers (the fields the manager reads). */
export interface DaemonInfoReply {
  id?: string | null;
  state: string;
  version?: { git_commit?: string; package_ver?: string };
}

/** Body of `POST /api/v1/mount` (§5). */
export interface MountBody {
  source: string;
  fs_type: "rafs";
  /** The instance's nydusd JSON config, as a string. */
  config: string;
}

const KIND_OF_STATUS: Record<number, ErrorKind> = {
  400: ErrorKind.InvalidArgument,
  404: ErrorKind.NotFound,
  409: ErrorKind.AlreadyExists,
  501: ErrorKind.NotImplemented,
  503: ErrorKind.Unavailable,
};

/**
 * A client of one nydusd's HTTP API on its unix socket (docs/compat.md §5), for any
 * nydusd-compatible daemon: ours or the real one. Every call fails with Unavailable when the
 * socket does not answer, and with the kind of the HTTP status (400 InvalidArgument, 404
 * NotFound, 501 NotImplemented, 503 Unavailable, else Internal) carrying the daemon's
 * `message` otherwise.
 */
export class NydusdClient {
  constructor(readonly socket: string) {}

  private async call(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`http://localhost${path}`, {
        method,
        unix: this.socket,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      } as RequestInit);
    } catch (e) {
      throw unavailable(`nydusd API ${this.socket}: ${method} ${path}: ${(e as Error).message}`, e);
    }
    if (res.ok) return res;
    const text = await res.text();
    let msg = text;
    try {
      const j = JSON.parse(text) as { message?: string };
      if (typeof j.message === "string") msg = j.message;
    } catch {}
    throw new RafsnapError(KIND_OF_STATUS[res.status] ?? ErrorKind.Internal, `nydusd ${method} ${path}: HTTP ${res.status}: ${msg}`);
  }

  /** `GET /api/v1/daemon`. */
  async info(timeoutMs?: number): Promise<DaemonInfoReply> {
    return (await (await this.call("GET", "/api/v1/daemon", undefined, timeoutMs)).json()) as DaemonInfoReply;
  }

  /** Mounts an instance at `mountpoint` (relative to the daemon's, e.g. `/12`). */
  async mount(mountpoint: string, body: MountBody): Promise<void> {
    await this.call("POST", `/api/v1/mount?mountpoint=${encodeURIComponent(mountpoint)}`, body, 120_000);
  }

  /** Unmounts the instance at `mountpoint`. */
  async umount(mountpoint: string): Promise<void> {
    await this.call("DELETE", `/api/v1/mount?mountpoint=${encodeURIComponent(mountpoint)}`);
  }

  /** `PUT /api/v1/daemon/fuse/sendfd`: hand the state and fd to the supervisor. */
  async sendFd(): Promise<void> {
    await this.call("PUT", "/api/v1/daemon/fuse/sendfd");
  }

  /** `PUT /api/v1/daemon/fuse/takeover`: take the predecessor's state from the supervisor. */
  async takeover(): Promise<void> {
    await this.call("PUT", "/api/v1/daemon/fuse/takeover", undefined, 60_000);
  }

  /** `PUT /api/v1/daemon/exit`: the daemon exits leaving its mounts (for a successor). */
  async exit(): Promise<void> {
    await this.call("PUT", "/api/v1/daemon/exit");
  }

  /** `PUT /api/v1/daemon/start`. */
  async start(): Promise<void> {
    await this.call("PUT", "/api/v1/daemon/start");
  }

  /**
   * `PUT /api/v1/config?id=<id>` (nydusd ≥ 2.4.1): replaces runtime settings of instance `id`
   * (`/<snapshot>` on a shared daemon, `/` on a dedicated one), e.g. `registry_auth`. The body
   * holds secrets: it is never part of an error message.
   */
  async updateConfig(id: string, body: Record<string, string>): Promise<void> {
    await this.call("PUT", `/api/v1/config?id=${encodeURIComponent(id)}`, body);
  }

  /** Blob cache files the instance `id` (e.g. `/12`, or `/` for a dedicated daemon) reads. */
  async underlyingFiles(id: string): Promise<string[]> {
    const r = (await this.cacheMetrics(id)) as { underlying_files?: unknown } | null;
    return Array.isArray(r?.underlying_files) ? r.underlying_files.filter((x): x is string => typeof x === "string") : [];
  }

  /** `GET /api/v1/metrics[?id=]`: the FsIoStats JSON of instance `id` (or of the only one), unchecked. */
  async fsMetrics(id: string | undefined): Promise<unknown> {
    return (await this.call("GET", `/api/v1/metrics${idQuery(id)}`, undefined, 10_000)).json();
  }

  /** `GET /api/v1/metrics/blobcache[?id=]`: the blob cache metrics JSON, unchecked. */
  async cacheMetrics(id: string | undefined): Promise<unknown> {
    return (await this.call("GET", `/api/v1/metrics/blobcache${idQuery(id)}`, undefined, 10_000)).json();
  }

  /** `GET /api/v1/metrics/inflight`: requests in flight; empty when the daemon answers 204 (idle). */
  async inflight(): Promise<unknown[]> {
    const res = await this.call("GET", "/api/v1/metrics/inflight", undefined, 10_000);
    if (res.status === 204) return [];
    const list: unknown = await res.json();
    return Array.isArray(list) ? list : [];
  }
}

/** The `?id=` query of a metrics call; none for undefined (a dedicated daemon's only instance). */
function idQuery(id: string | undefined): string {
  return id === undefined ? "" : `?id=${encodeURIComponent(id)}`;
}
