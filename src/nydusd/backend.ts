import { open } from "node:fs/promises";
import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";
import type { RegistryClient } from "../registry/index.ts";

/** Where blob bytes (compressed, as stored) come from. */
export interface BlobBackend {
  /** A short description for logs and errors (`registry host/repo`, `localfs dir`). */
  readonly name: string;
  /** Reads `[offset, offset + length)` of blob `blobId` as stored. */
  read(blobId: string, offset: number, length: number): Promise<Uint8Array>;
  /** Registry only: replaces the credentials (`PUT /api/v1/config`). */
  setAuth?(auth: { credentials?: { username: string; password: string }; bearerToken?: string }): void;
}

const BLOB_ID = /^[0-9a-f]{64}$/;

function checkId(blobId: string): void {
  if (!BLOB_ID.test(blobId)) throw invalidArgument(`blob id ${JSON.stringify(blobId)} is not 64 hex digits`);
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
 * requests (retried and resumed by the client).
 */
export function registryBackend(client: RegistryClient, repo: string): BlobBackend {
  return {
    name: `registry ${client.host}/${repo}`,
    setAuth: (auth) => client.setAuth(auth),
    async read(blobId, offset, length) {
      checkId(blobId);
      const parts: Uint8Array[] = [];
      for await (const c of client.blobStream(repo, `sha256:${blobId}`, offset, offset + length)) parts.push(c);
      return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
    },
  };
}

/** One endpoint of {@link tieredBackend}. */
export interface Tier {
  backend: BlobBackend;
  /** Consecutive failures before the tier is skipped for `skipMs`. */
  failureLimit: number;
  skipMs: number;
  /** When this tier fails, may the next ones be tried? (`proxy.fallback`; true for mirrors.) */
  fallback: boolean;
}

/**
 * Reads through a list of endpoints in order — a proxy, then mirrors, then the origin
 * registry (the last tier) — as nydusd does: a tier that fails `failureLimit` times in a row
 * is skipped for `skipMs` (the origin never is), a failed read goes on to the next tier
 * unless the tier forbids fallback, and the error of the last tier tried is thrown. `log`
 * hears about every failover (never with credentials: names are `registry host/repo`).
 */
export function tieredBackend(tiers: Tier[], log?: (msg: string) => void, now = () => Date.now()): BlobBackend {
  const state = tiers.map(() => ({ failures: 0, skipUntil: 0 }));
  const origin = tiers[tiers.length - 1] as Tier;
  return {
    name: origin.backend.name,
    setAuth: (auth) => {
      for (const t of tiers) t.backend.setAuth?.(auth);
    },
    async read(blobId, offset, length) {
      let last: unknown;
      for (const [i, t] of tiers.entries()) {
        const st = state[i] as { failures: number; skipUntil: number };
        const isOrigin = i === tiers.length - 1;
        if (!isOrigin && st.skipUntil > now()) continue;
        try {
          const data = await t.backend.read(blobId, offset, length);
          st.failures = 0;
          return data;
        } catch (e) {
          last = e;
          st.failures++;
          if (!isOrigin && st.failures >= t.failureLimit) {
            st.skipUntil = now() + t.skipMs;
            st.failures = 0;
          }
          if (!isOrigin) log?.(`${t.backend.name} failed (${(e as Error).message})${t.fallback ? "; trying the next endpoint" : ""}`);
          if (!t.fallback) throw e;
        }
      }
      throw last;
    },
  };
}
