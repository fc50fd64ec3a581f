// A throw-away OCI distribution registry (Debian's docker-registry 2.8) on 127.0.0.1.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, spawnProcess, waitFor } from "./process.ts";
import type { ChildProcess } from "./process.ts";

/** A running registry started by {@link startRegistry}. */
export interface Registry {
  /** `127.0.0.1:PORT`, usable in image references (`HOST/NAME:TAG`). */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The registry process (log in `DIR/registry.log`). */
  process: ChildProcess;
  /** Stops the registry (SIGTERM, then SIGKILL). Idempotent. */
  stop(): Promise<void>;
}

/** Path of the registry binary; override with `RAFSNAP_REGISTRY_BIN`. */
export const REGISTRY_BIN = process.env.RAFSNAP_REGISTRY_BIN ?? "/usr/bin/docker-registry";

/**
 * Starts `docker-registry serve` with filesystem storage under `dir/storage`, plain HTTP on
 * 127.0.0.1 only, no auth, deletes enabled, and waits until `GET /v2/` answers 200.
 * @param dir private directory for config, storage and `registry.log`.
 */
export async function startRegistry(dir: string, opts: { timeoutMs?: number } = {}): Promise<Registry> {
  mkdirSync(join(dir, "storage"), { recursive: true });
  const port = await freePort();
  const debugPort = await freePort();
  const config = join(dir, "config.yml");
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
        http: { addr: `127.0.0.1:${port}`, debug: { addr: `127.0.0.1:${debugPort}` } },
      },
      null,
      2,
    ),
  );
  const proc = spawnProcess({ cmd: [REGISTRY_BIN, "serve", config], logFile: join(dir, "registry.log") });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      `registry ${url}/v2/`,
      async () => {
        try {
          const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
          return res.status === 200;
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
