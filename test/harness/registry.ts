// A throw-away OCI distribution registry (Debian's docker-registry 2.8) on 127.0.0.1.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, spawnProcess, waitFor } from "./process.ts";
import type { ChildProcess } from "./process.ts";

/** A running registry started by {@link startRegistry}. */
export interface Registry {
  /** `127.0.0.1:PORT`, usable in image references (`HOST/NAME:TAG`). */
  host: string;
  /** `http://127.0.0.1:PORT` (https with `tls`). */
  url: string;
  /** The registry process (log in `DIR/registry.log`). */
  process: ChildProcess;
  /** Stops the registry (SIGTERM, then SIGKILL). Idempotent. */
  stop(): Promise<void>;
}

/** Path of the registry binary; override with `RAFSNAP_REGISTRY_BIN`. */
export const REGISTRY_BIN = process.env.RAFSNAP_REGISTRY_BIN ?? "/usr/bin/docker-registry";

/** Optional registry features: TLS, htpasswd (basic) auth, or token (bearer) auth. */
export interface RegistryOptions {
  timeoutMs?: number;
  /** Serve HTTPS with this certificate; `ca` is what clients (and the readiness probe) trust. */
  tls?: { cert: string; key: string; ca: string };
  /** Basic auth with one user (bcrypt htpasswd file written here). */
  htpasswd?: { user: string; password: string };
  /** Bearer token auth: tokens signed by the key of `rootCert` (see token-server.ts). */
  token?: { realm: string; service: string; issuer: string; rootCert: string };
}

/**
 * Starts `docker-registry serve` with filesystem storage under `dir/storage`, on 127.0.0.1
 * only, deletes enabled — plain HTTP without auth unless `opts` asks for TLS, htpasswd or
 * token auth — and waits until `GET /v2/` answers (200, or 401 when auth is on).
 * @param dir private directory for config, storage and `registry.log`.
 */
export async function startRegistry(dir: string, opts: RegistryOptions = {}): Promise<Registry> {
  mkdirSync(join(dir, "storage"), { recursive: true });
  const port = await freePort();
  const debugPort = await freePort();
  const config = join(dir, "config.yml");
  let auth: Record<string, unknown> | undefined;
  if (opts.htpasswd) {
    const hash = await Bun.password.hash(opts.htpasswd.password, { algorithm: "bcrypt", cost: 4 });
    writeFileSync(join(dir, "htpasswd"), `${opts.htpasswd.user}:${hash}\n`);
    auth = { htpasswd: { realm: "rafsnap-test", path: join(dir, "htpasswd") } };
  } else if (opts.token) {
    auth = {
      token: { realm: opts.token.realm, service: opts.token.service, issuer: opts.token.issuer, rootcertbundle: opts.token.rootCert },
    };
  }
  // JSON is YAML; the registry reads it as such. Debug server pinned to loopback too (it
  // defaults to off, but keep every listener explicit).
  writeFileSync(
    config,
    JSON.stringify(
      {
        version: 0.1,
        log: { level: "info", formatter: "text", accesslog: { disabled: true } },
        storage: {
          filesystem: { rootdirectory: join(dir, "storage") },
          delete: { enabled: true },
          cache: { blobdescriptor: "inmemory" },
          maintenance: { uploadpurging: { enabled: false } },
        },
        http: {
          addr: `127.0.0.1:${port}`,
          debug: { addr: `127.0.0.1:${debugPort}` },
          ...(opts.tls ? { tls: { certificate: opts.tls.cert, key: opts.tls.key } } : {}),
        },
        ...(auth ? { auth } : {}),
      },
      null,
      2,
    ),
  );
  const proc = spawnProcess({ cmd: [REGISTRY_BIN, "serve", config], logFile: join(dir, "registry.log") });
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`;
  const ca = opts.tls ? readFileSync(opts.tls.ca, "utf8") : undefined;
  try {
    await waitFor(
      `registry ${url}/v2/`,
      async () => {
        try {
          const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000), tls: ca ? { ca } : undefined } as RequestInit);
          return res.status === 200 || (res.status === 401 && (opts.htpasswd !== undefined || opts.token !== undefined));
        } catch {
          return false;
        }
      },
      opts.timeoutMs ?? 15_000,
      () => !proc.hasExited(),
    );
  } catch (err) {
    await proc.stop();
    throw new Error(`${(err as Error).message}\n--- registry.log ---\n${proc.logTail()}`);
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    process: proc,
    async stop() {
      await proc.stop();
    },
  };
}

/**
 * Bytes of the range (206) blob responses `reg` logged after log offset `from` (see
 * {@link registryLogSize}), and how many: what a lazy reader fetched, counted by the registry
 * itself — a separate process, so the count cannot starve with the test's own event loop.
 * Call it after the reader stopped: the registry logs a response once it completed.
 */
export function rangeBytesServed(reg: Registry, from = 0): { bytes: number; requests: number } {
  const text = readFileSync(reg.process.logFile).subarray(from).toString("utf8");
  let bytes = 0;
  let requests = 0;
  for (const line of text.split("\n")) {
    if (!line.includes("http.response.status=206") || !line.includes("/blobs/")) continue;
    const m = line.match(/http\.response\.written=(\d+)/);
    if (!m) continue;
    bytes += Number(m[1]);
    requests++;
  }
  return { bytes, requests };
}

/** The registry log's current size: a mark for {@link rangeBytesServed}. */
export function registryLogSize(reg: Registry): number {
  return readFileSync(reg.process.logFile).length;
}
