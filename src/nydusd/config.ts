import { readFileSync } from "node:fs";
import { invalidArgument } from "../errdefs/index.ts";

/** Backend settings of a nydusd fusedev config (docs/compat.md §4.5). */
export type BackendConfig =
  | { type: "localfs"; dir?: string; blobFile?: string }
  | {
      type: "registry";
      host: string;
      repo: string;
      scheme: "http" | "https" | "";
      /** base64 `user:password`, or "" */
      auth: string;
      registryToken: string;
      skipVerify: boolean;
      caCertFiles: string[];
      retryLimit: number;
      timeoutSeconds: number;
      /** Registry mirrors tried in order before the origin (`mirrors[]`). */
      mirrors: MirrorConfig[];
      /** A caching proxy tried first (`proxy`); with `fallback` the mirrors/origin follow. */
      proxy?: ProxyConfig;
    };

/** The backend's `proxy` (a P2P or caching proxy serving the registry's `/v2` paths). */
export interface ProxyConfig {
  /** `http(s)://host[:port]`. */
  url: string;
  /** When the proxy fails (or fails its ping), may the mirrors and the origin be tried? Default true. */
  fallback: boolean;
  /**
   * `check_interval`, seconds (default 5): with `pingUrl`, how often the proxy is pinged;
   * without, how long it is skipped after a failed read.
   */
  checkIntervalSeconds: number;
  /** `ping_url`: health-check URL (a 2xx answer within 3 s is healthy), or "" for none. */
  pingUrl: string;
}

/** One entry of the backend's `mirrors` list. */
export interface MirrorConfig {
  /** `http(s)://host[:port]`, or a bare `host[:port]` (https, http on loopback). */
  host: string;
  /** Consecutive failures before the mirror is skipped (`failure_limit`, default 5). */
  failureLimit: number;
  /**
   * `health_check_interval`, seconds (default 5): with `pingUrl`, how often the mirror is
   * pinged; without, how long it is skipped after `failureLimit` failed reads.
   */
  healthCheckIntervalSeconds: number;
  /** `ping_url`: health-check URL (a 2xx answer within 3 s is healthy), or "" for none. */
  pingUrl: string;
  /** `headers`: sent with every request to this mirror (names lower-cased). */
  headers: Record<string, string>;
  /**
   * `auth_through` (default false): the mirror gets the origin's credentials and
   * `registry_token`. Without it, requests to the mirror carry no credentials at all.
   */
  authThrough: boolean;
}

/** The parts of a nydusd fusedev (v1 "RafsConfig") JSON that rafsnap's daemon uses. */
export interface DaemonConfig {
  backend: BackendConfig;
  /** `device.cache.config.work_dir`: where blob caches live. */
  workDir: string;
  digestValidate: boolean;
  /** Merge fetches of chunks closer than this (`amplify_io`, bytes). */
  amplifyIo: number;
  prefetch: {
    enable: boolean;
    prefetchAll: boolean;
    threadsCount: number;
    /** `merging_size`, bytes: the largest merged prefetch request (default 128 KiB, as nydusd). */
    mergingSize: number;
    /** `bandwidth_rate`, bytes per second prefetch may fetch; 0 (the default) is unlimited. */
    bandwidthRate: number;
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function field<T>(o: Obj, key: string, path: string, type: "string" | "boolean" | "number", dflt: T): T {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== type) throw invalidArgument(`nydusd config: ${path}.${key} must be a ${type}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** A number field that must be finite and ≥ 0; InvalidArgument naming the key. */
function amount(o: Obj, key: string, path: string, dflt: number): number {
  const v: number = field(o, key, path, "number", dflt);
  if (!Number.isFinite(v) || v < 0) throw invalidArgument(`nydusd config: ${path}.${key} must be a non-negative number, got ${v}`);
  return v;
}

/** An interval in seconds: absent or 0 is `dflt` (Go writes zero values), negative is InvalidArgument. */
const interval = (o: Obj, key: string, path: string, dflt: number) => amount(o, key, path, dflt) || dflt;

/** An optional `ping_url`: "" or an absolute http(s) URL; InvalidArgument naming the key. */
function pingUrlOf(o: Obj, path: string): string {
  const url: string = field(o, "ping_url", path, "string", "");
  if (url === "") return "";
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    u = undefined;
  }
  // The URL itself stays out of the message: it may carry user:password.
  if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) throw invalidArgument(`nydusd config: ${path}.ping_url must be an http(s) URL`);
  return url;
}

/** A mirror's `headers`: an object of strings, valid as HTTP headers; names lower-cased. */
function headersOf(o: Obj, path: string): Record<string, string> {
  const h = o.headers;
  if (h === undefined || h === null) return {};
  if (!isObj(h) || !Object.values(h).every((v) => typeof v === "string")) {
    throw invalidArgument(`nydusd config: ${path}.headers must be an object of strings`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h as Record<string, string>)) {
    try {
      new Headers([[k, v]]);
    } catch {
      // Values stay out of the message: a header may carry a credential.
      throw invalidArgument(`nydusd config: ${path}.headers[${JSON.stringify(k)}] is not a valid HTTP header`);
    }
    out[k.toLowerCase()] = v;
  }
  return out;
}

/**
 * Parses a nydusd fusedev config (`{"device":{"backend":…,"cache":…},"digest_validate":…}`).
 * Supported backends: `registry` and `localfs` (oss/s3 are InvalidArgument naming the type).
 * `imagePullAuth` (the `IMAGE_PULL_AUTH` environment variable, base64 `user:password`)
 * replaces the registry auth, as nydusd does. Wrong types are InvalidArgument naming the key;
 * so are negative sizes, rates and intervals (0 is the default 5 s), a `ping_url` that is not an
 * http(s) URL and mirror `headers` that are not valid HTTP headers (never quoting values).
 */
export function parseDaemonConfig(text: string, source: string, imagePullAuth?: string): DaemonConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`nydusd config ${source} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObj(raw) || !isObj(raw.device)) throw invalidArgument(`nydusd config ${source}: missing "device" object`);
  const dev = raw.device;
  if (!isObj(dev.backend)) throw invalidArgument(`nydusd config ${source}: missing device.backend`);
  const btype: string = field(dev.backend, "type", "device.backend", "string", "");
  const bc = isObj(dev.backend.config) ? dev.backend.config : {};
  const p = "device.backend.config";
  let backend: BackendConfig;
  if (btype === "localfs") {
    backend = { type: "localfs", dir: field(bc, "dir", p, "string", undefined), blobFile: field(bc, "blob_file", p, "string", undefined) };
    if (!backend.dir && !backend.blobFile) throw invalidArgument(`nydusd config ${source}: localfs backend needs ${p}.dir or blob_file`);
  } else if (btype === "registry") {
    const host = field(bc, "host", p, "string", "");
    const repo = field(bc, "repo", p, "string", "");
    if (!host || !repo) throw invalidArgument(`nydusd config ${source}: registry backend needs ${p}.host and ${p}.repo`);
    const scheme: string = field(bc, "scheme", p, "string", "");
    if (scheme !== "" && scheme !== "http" && scheme !== "https") throw invalidArgument(`nydusd config ${source}: ${p}.scheme must be http or https`);
    const ca = bc.ca_cert_files;
    if (ca !== undefined && !(Array.isArray(ca) && ca.every((x) => typeof x === "string"))) {
      throw invalidArgument(`nydusd config ${source}: ${p}.ca_cert_files must be a list of paths`);
    }
    const mirrorsRaw = bc.mirrors ?? [];
    if (!Array.isArray(mirrorsRaw) || !mirrorsRaw.every(isObj)) throw invalidArgument(`nydusd config ${source}: ${p}.mirrors must be a list of objects`);
    const mirrors = (mirrorsRaw as Obj[]).map((m, i): MirrorConfig => {
      const mhost: string = field(m, "host", `${p}.mirrors[${i}]`, "string", "");
      if (!mhost) throw invalidArgument(`nydusd config ${source}: ${p}.mirrors[${i}].host is required`);
      const mp = `${p}.mirrors[${i}]`;
      return {
        host: mhost,
        failureLimit: amount(m, "failure_limit", mp, 5),
        healthCheckIntervalSeconds: interval(m, "health_check_interval", mp, 5),
        pingUrl: pingUrlOf(m, mp),
        headers: headersOf(m, mp),
        authThrough: field(m, "auth_through", mp, "boolean", false),
      };
    });
    let proxy: ProxyConfig | undefined;
    if (bc.proxy !== undefined && bc.proxy !== null) {
      const pp = `${p}.proxy`;
      if (!isObj(bc.proxy)) throw invalidArgument(`nydusd config ${source}: ${pp} must be an object`);
      const url: string = field(bc.proxy, "url", pp, "string", "");
      if (url) {
        proxy = {
          url,
          fallback: field(bc.proxy, "fallback", pp, "boolean", true),
          checkIntervalSeconds: interval(bc.proxy, "check_interval", pp, 5),
          pingUrl: pingUrlOf(bc.proxy, pp),
        };
      }
    }
    backend = {
      type: "registry",
      host,
      repo,
      mirrors,
      proxy,
      scheme,
      auth: imagePullAuth || field(bc, "auth", p, "string", ""),
      registryToken: field(bc, "registry_token", p, "string", ""),
      skipVerify: field(bc, "skip_verify", p, "boolean", false),
      caCertFiles: (ca as string[] | undefined) ?? [],
      retryLimit: field(bc, "retry_limit", p, "number", 2),
      timeoutSeconds: field(bc, "timeout", p, "number", 5),
    };
  } else {
    throw invalidArgument(`nydusd config ${source}: backend type ${JSON.stringify(btype)} is not supported (registry, localfs)`);
  }
  const cache = isObj(dev.cache) ? dev.cache : {};
  const cc = isObj(cache.config) ? cache.config : {};
  const workDir = field(cc, "work_dir", "device.cache.config", "string", "");
  if (!workDir) throw invalidArgument(`nydusd config ${source}: device.cache.config.work_dir is required`);
  const fp = isObj(raw.fs_prefetch) ? raw.fs_prefetch : {};
  return {
    backend,
    workDir,
    digestValidate: field(raw, "digest_validate", "", "boolean", false),
    amplifyIo: field(raw, "amplify_io", "", "number", 1 << 20),
    prefetch: {
      enable: field(fp, "enable", "fs_prefetch", "boolean", false),
      prefetchAll: field(fp, "prefetch_all", "fs_prefetch", "boolean", false),
      threadsCount: field(fp, "threads_count", "fs_prefetch", "number", 4),
      mergingSize: amount(fp, "merging_size", "fs_prefetch", 128 << 10),
      bandwidthRate: amount(fp, "bandwidth_rate", "fs_prefetch", 0),
    },
  };
}

/** Reads and parses the config file at `path` (see {@link parseDaemonConfig}). */
export function loadDaemonConfig(path: string, imagePullAuth = process.env.IMAGE_PULL_AUTH): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw invalidArgument(`nydusd config ${path}: ${(e as Error).message}`);
  }
  return parseDaemonConfig(text, path, imagePullAuth);
}
