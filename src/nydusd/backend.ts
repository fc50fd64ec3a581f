import { readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";
import { isBlobId } from "../rafs/index.ts";
import { fetchTls, RegistryClient } from "../registry/index.ts";
import type { BackendConfig } from "./config.ts";

/** Where blob bytes (compressed, as stored) come from. */
export interface BlobBackend {
  /** A short description for logs and errors (`registry host/repo`, `localfs dir`). */
  readonly name: string;
  /** Reads `[offset, offset + length)` of blob `blobId` as stored. */
  read(blobId: string, offset: number, length: number): Promise<Uint8Array>;
  /** Registry only: replaces the credentials (`PUT /api/v1/config`). */
  setAuth?(auth: { credentials?: { username: string; password: string }; bearerToken?: string }): void;
  /**
   * Stops the backend's background work (health-check timers and pings in flight). Reads
   * still work afterwards, with the health last seen. Idempotent; absent when there is none.
   */
  close?(): void;
}

function checkId(blobId: string): void {
  if (!isBlobId(blobId)) throw invalidArgument(`blob id ${JSON.stringify(blobId)} is not 64 hex digits`);
}

/**
 * nydusd's `localfs` backend: blob `<id>` is the file `<dir>/<id>` — or, with `blobFile`
 * (`blob_file`), that one file whatever the id. Short reads (past the end of the file) are
 * InvalidArgument naming the blob and the range.
 */
export function localfsBackend(dir: string, blobFile?: string): BlobBackend {
  return {
    name: `localfs ${blobFile ?? dir}`,
    async read(blobId, offset, length) {
      checkId(blobId);
      const path = blobFile ?? join(dir, blobId);
      const fh = await open(path, "r");
      try {
        const out = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(out, done, length - done, offset + done);
          if (bytesRead === 0) throw invalidArgument(`blob ${blobId}: ${offset}+${length} reaches past the end of ${path}`);
          done += bytesRead;
        }
        return out;
      } finally {
        await fh.close();
      }
    },
  };
}

/**
 * nydusd's `registry` backend: blob `<id>` is `sha256:<id>` in `repo`, read with HTTP Range
 * requests (whole ranges, retried by the client: `RegistryClient.readRange`).
 */
export function registryBackend(client: RegistryClient, repo: string): BlobBackend {
  return {
    name: `registry ${client.host}/${repo}`,
    setAuth: (auth) => client.setAuth(auth),
    async read(blobId, offset, length) {
      checkId(blobId);
      return client.readRange(repo, `sha256:${blobId}`, offset, offset + length);
    },
  };
}

/** Health checking of one {@link Tier} through its `ping_url`. */
export interface TierHealth {
  /**
   * One probe: resolves true when the endpoint is healthy, false otherwise (a rejection
   * counts as false). Should give up when `signal` aborts.
   */
  ping(signal: AbortSignal): Promise<boolean>;
  /** Time between the end of one probe and the start of the next. */
  intervalMs: number;
}

/** One endpoint of {@link tieredBackend}. */
export interface Tier {
  backend: BlobBackend;
  /**
   * Consecutive failed reads that take the tier out of use: for `skipMs` without `health`,
   * until its next successful ping with it.
   */
  failureLimit: number;
  skipMs: number;
  /**
   * When this tier fails, may the next ones be tried? (`proxy.fallback`; true for mirrors.)
   * A tier without fallback is never skipped: every read goes to it.
   */
  fallback: boolean;
  /** Pinged in the background; used only while its last ping succeeded. */
  health?: TierHealth;
}

/** Runs `fn` once after `ms`; returns a canceller. */
export type Schedule = (fn: () => void, ms: number) => () => void;

/** setTimeout, unref'd: a forgotten health check never keeps a process alive. */
const timerSchedule: Schedule = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return () => clearTimeout(t);
};

interface TierState {
  failures: number;
  skipUntil: number;
  /** Pinged tiers: the last ping's answer; undefined until the first one is in. */
  healthy?: boolean;
  firstPing?: Promise<void>;
}

/**
 * Reads through a list of endpoints in order — a proxy, then mirrors, then the origin
 * registry (the last tier) — as nydusd does. A tier with `health` is pinged at once and then
 * every `intervalMs`, and is used only while its last ping succeeded (the first read waits
 * for the first ping); `failureLimit` failed reads in a row take it out of use until the next
 * successful ping. A tier without `health` that fails `failureLimit` times in a row is skipped
 * for `skipMs`. The origin is never skipped, nor is a tier without fallback (a proxy with
 * `fallback: false`: its failure fails the read). A failed read goes on to the next tier,
 * and the error of the last tier tried is thrown. `log` hears about every failover and every
 * change of a tier's ping health (never with credentials: names are `registry host/repo`).
 * `close()` stops the pings and their timers; call it when the backend is dropped.
 */
export function tieredBackend(
  tiers: Tier[],
  log?: (msg: string) => void,
  now = () => Date.now(),
  schedule: Schedule = timerSchedule,
): BlobBackend & { close(): void } {
  const state: TierState[] = tiers.map(() => ({ failures: 0, skipUntil: 0 }));
  const origin = tiers[tiers.length - 1] as Tier;
  const stop = new AbortController();
  const timers = new Map<number, () => void>();

  const check = async (i: number, t: Tier, h: TierHealth): Promise<void> => {
    timers.delete(i);
    const st = state[i] as TierState;
    let ok = false;
    try {
      ok = await h.ping(stop.signal);
    } catch {
      ok = false;
    }
    if (stop.signal.aborted) return;
    if (ok !== st.healthy && (st.healthy !== undefined || !ok)) {
      log?.(ok ? `${t.backend.name} answers its ping again; using it` : `${t.backend.name} fails its ping; skipped until it answers`);
    }
    st.healthy = ok;
    if (ok) st.failures = 0;
    timers.set(
      i,
      schedule(() => void check(i, t, h), h.intervalMs),
    );
  };
  tiers.forEach((t, i) => {
    if (t.health && i < tiers.length - 1) (state[i] as TierState).firstPing = check(i, t, t.health);
  });

  return {
    name: origin.backend.name,
    setAuth: (auth) => {
      for (const t of tiers) t.backend.setAuth?.(auth);
    },
    close() {
      stop.abort();
      for (const cancel of timers.values()) cancel();
      timers.clear();
    },
    async read(blobId, offset, length) {
      let last: unknown;
      for (const [i, t] of tiers.entries()) {
        const st = state[i] as TierState;
        const skippable = i < tiers.length - 1 && t.fallback;
        if (skippable && t.health && st.healthy === undefined) await st.firstPing;
        if (skippable && (t.health ? !st.healthy : st.skipUntil > now())) continue;
        try {
          const data = await t.backend.read(blobId, offset, length);
          st.failures = 0;
          return data;
        } catch (e) {
          last = e;
          st.failures++;
          if (skippable && st.failures >= t.failureLimit) {
            if (t.health) st.healthy = false;
            else st.skipUntil = now() + t.skipMs;
            st.failures = 0;
          }
          if (i < tiers.length - 1) log?.(`${t.backend.name} failed (${(e as Error).message})${t.fallback ? "; trying the next endpoint" : ""}`);
          if (!t.fallback) throw e;
        }
      }
      throw last;
    },
  };
}

/** How long a ping may take before the endpoint counts as unhealthy. */
export const PING_TIMEOUT_MS = 3_000;

/**
 * A {@link TierHealth.ping} that GETs `url`: true for a 2xx answer within `timeoutMs`, false
 * for any other status, a connection error, a timeout or an abort. Never throws. `tls` is
 * passed to Bun's fetch (the backend's CA and skip_verify).
 */
export function httpPing(
  url: string,
  opts: { timeoutMs?: number; tls?: { ca?: string; rejectUnauthorized?: boolean } } = {},
): (signal: AbortSignal) => Promise<boolean> {
  return async (signal) => {
    try {
      const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(opts.timeoutMs ?? PING_TIMEOUT_MS)]), tls: opts.tls } as RequestInit);
      await res.body?.cancel().catch(() => {});
      return res.ok;
    } catch {
      return false;
    }
  };
}

/** Decodes base64 `user:password` (`auth`, `registry_auth`); InvalidArgument naming `what`. */
export function decodeAuth(auth: string, what: string): { username: string; password: string } {
  const plain = Buffer.from(auth, "base64").toString();
  const i = plain.indexOf(":");
  if (i <= 0) throw invalidArgument(`${what} is not base64 of user:password`);
  return { username: plain.slice(0, i), password: plain.slice(i + 1) };
}

/**
 * The backend a daemon config names: localfs, or the registry — behind its proxy and
 * mirrors when there are any ({@link tieredBackend}). Mirrors and the proxy get one retry,
 * the origin `retry_limit`; a mirror's `headers` go with every request to it; a mirror or
 * proxy with a `ping_url` is pinged every `health_check_interval` / `check_interval` seconds
 * ({@link httpPing}, 3 s timeout). The caller must `close()` the backend when dropping it.
 * Throws InvalidArgument for an `auth` that is not base64 `user:password`, and the fs error
 * for an unreadable `ca_cert_files` entry.
 */
export function backendFromConfig(c: BackendConfig, log?: (msg: string) => void, schedule?: Schedule): BlobBackend {
  if (c.type === "localfs") {
    return c.blobFile ? localfsBackend(c.dir ?? "", c.blobFile) : localfsBackend(c.dir as string);
  }
  const credentials = c.auth ? decodeAuth(c.auth, "nydusd config: device.backend.config.auth") : undefined;
  const caCert = c.caCertFiles.length ? c.caCertFiles.map((f) => readFileSync(f, "utf8")).join("\n") : undefined;
  const common = { skipVerify: c.skipVerify, caCert, credentials, bearerToken: c.registryToken || undefined, timeoutMs: c.timeoutSeconds * 1000 };
  const origin = registryBackend(
    new RegistryClient(c.host, { ...common, plainHttp: c.scheme === "http" ? true : c.scheme === "https" ? false : undefined, retries: c.retryLimit }),
    c.repo,
  );
  if (c.mirrors.length === 0 && !c.proxy) return origin;
  // Mirrors and the proxy are other origins: they get the origin's credentials only when a
  // mirror says `auth_through` (nydus's setting), never by default.
  const endpoint = (url: string, headers?: Record<string, string>, authThrough = false) => {
    const m = url.match(/^(https?):\/\/([^/]+)/);
    const host = m ? (m[2] as string) : url.replace(/\/.*$/, "");
    const auth = authThrough ? {} : { credentials: undefined, bearerToken: undefined };
    return registryBackend(new RegistryClient(host, { ...common, ...auth, headers, plainHttp: m ? m[1] === "http" : undefined, retries: 1 }), c.repo);
  };
  const tls = fetchTls(caCert, c.skipVerify);
  const health = (pingUrl: string, seconds: number): TierHealth | undefined =>
    pingUrl ? { ping: httpPing(pingUrl, { tls }), intervalMs: seconds * 1000 } : undefined;
  const tiers: Tier[] = [];
  if (c.proxy) {
    const p = c.proxy;
    tiers.push({
      backend: endpoint(p.url),
      failureLimit: 1,
      skipMs: p.checkIntervalSeconds * 1000,
      fallback: p.fallback,
      health: health(p.pingUrl, p.checkIntervalSeconds),
    });
  }
  for (const m of c.mirrors) {
    const skipMs = m.healthCheckIntervalSeconds * 1000;
    tiers.push({
      backend: endpoint(m.host, m.headers, m.authThrough),
      failureLimit: m.failureLimit,
      skipMs,
      fallback: true,
      health: health(m.pingUrl, m.healthCheckIntervalSeconds),
    });
  }
  tiers.push({ backend: origin, failureLimit: 1, skipMs: 0, fallback: false });
  return tieredBackend(tiers, log, undefined, schedule);
}
