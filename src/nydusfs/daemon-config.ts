import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";
import { httpPing } from "../nydusd/index.ts";
import { type Credentials, credentialsFromDockerConfig, parseImageRef } from "../registry/index.ts";
import builtinTemplate from "./nydusd-config.json" with { type: "json" };
import { Label } from "../labels/index.ts";

/** A nydusd fusedev config as JSON (docs/compat.md §4.5); only the keys we set are typed. */
export type NydusdJson = Record<string, unknown> & {
  device: { id?: string; backend: { type: string; config: Record<string, unknown> }; cache: { type: string; config: Record<string, unknown> } };
};

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * The daemon config template: the JSON file `[daemon] nydusd_config` names, or — when that
 * file does not exist — the built-in template (registry backend, blob cache, no prefetch:
 * only what containers read is fetched). InvalidArgument naming the file when it is not a
 * JSON object with `device.backend` and `device.cache` objects.
 */
export function loadTemplate(path: string): { template: NydusdJson; source: string } {
  if (!existsSync(path)) return { template: structuredClone(builtinTemplate) as NydusdJson, source: "built-in template" };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw invalidArgument(`nydusd config template ${path}: ${(e as Error).message}`);
  }
  const dev = isObj(raw) ? raw.device : undefined;
  if (!isObj(dev) || !isObj(dev.backend) || !isObj(dev.cache)) {
    throw invalidArgument(`nydusd config template ${path}: needs the objects device.backend and device.cache (fusedev format)`);
  }
  const backend = dev.backend as Record<string, unknown>;
  backend.config = isObj(backend.config) ? backend.config : {};
  const cache = dev.cache as Record<string, unknown>;
  cache.config = isObj(cache.config) ? cache.config : {};
  return { template: raw as NydusdJson, source: path };
}

/** What {@link instanceConfig} fills into the template for one RAFS instance. */
export interface InstanceFacts {
  /** The image reference (`cri.image-ref`). */
  imageRef: string;
  /** Instance key, the meta snapshot id: `device.id` becomes `/<key>`. */
  rafsKey: string;
  /** `[cache_manager] cache_dir`. */
  cacheDir: string;
  /** Labels of the meta snapshot (pull credentials). */
  labels: Record<string, string>;
  /** The mirror picked from `[remote.mirrors_config] dir` ({@link pickMirror}), if any. */
  mirror?: Mirror;
  /** docker `config.json` to read credentials from. */
  dockerConfig?: string;
  /**
   * Credentials already resolved (the service's keychain); when the key is present the
   * labels and docker config are not read, and `null` means none were found.
   */
  credentials?: Credentials | null;
}

/**
 * Deep-copies `template` and supplements it for one instance (§4.5): registry `host` (the
 * image's; `docker.io` → `index.docker.io`, or the `mirror` picked from its `hosts.toml`) and
 * `repo`; credentials from the pull labels, else from the docker config (`auth` =
 * base64 user:pass, or `registry_token` for a token) — the template's own are kept when none
 * is found; `device.id` = `/<rafsKey>`; the cache `work_dir`. InvalidArgument for a bad image
 * reference or hosts.toml.
 */
export function instanceConfig(template: NydusdJson, f: InstanceFacts): NydusdJson {
  const cfg = structuredClone(template);
  cfg.device.id = `/${f.rafsKey}`;
  cfg.device.cache.config.work_dir = f.cacheDir;
  const bc = cfg.device.backend.config;
  if (cfg.device.backend.type === "registry") {
    const ref = parseImageRef(f.imageRef);
    const host = ref.host === "docker.io" ? "index.docker.io" : ref.host;
    bc.host = host;
    bc.repo = ref.repository;
    const mirror = f.mirror;
    if (mirror) {
      bc.host = mirror.host;
      bc.scheme = mirror.scheme;
      if (mirror.ca.length) bc.ca_cert_files = mirror.ca;
      if (mirror.skipVerify) bc.skip_verify = true;
    }
    const creds = "credentials" in f ? (f.credentials ?? undefined) : credentialsOf(f.labels, ref.host, f.dockerConfig);
    if (creds) fillAuth(bc, creds);
  }
  return cfg;
}

/**
 * Puts `creds` into a registry backend config (nydus `FillAuth`): a token (no user name)
 * becomes `registry_token` and any `auth` is dropped; a user and password become `auth`
 * (base64 `user:password`) and any `registry_token` is dropped.
 */
export function fillAuth(backendConfig: Record<string, unknown>, creds: Credentials): void {
  if ("identityToken" in creds) {
    backendConfig.registry_token = creds.identityToken;
    delete backendConfig.auth;
  } else {
    backendConfig.auth = authOf(creds);
    delete backendConfig.registry_token;
  }
}

/** base64 of `user:password`: the `auth` and `registry_auth` value. */
export function authOf(creds: { username: string; password: string }): string {
  return Buffer.from(`${creds.username}:${creds.password}`).toString("base64");
}

function credentialsOf(labels: Record<string, string>, host: string, dockerConfig?: string): Credentials | undefined {
  const user = labels[Label.PullUsername];
  const secret = labels[Label.PullSecret];
  if (secret !== undefined) return user ? { username: user, password: secret } : { identityToken: secret };
  return credentialsFromDockerConfig(host, dockerConfig);
}

/** A registry mirror of a containerd `hosts.toml`. */
export interface Mirror {
  host: string;
  scheme: "http" | "https";
  ca: string[];
  skipVerify: boolean;
  /** `ping_url`: when set, the mirror is used only if this answers 2xx within 3 s. */
  pingUrl?: string;
}

/**
 * The mirrors of the containerd-style `hosts.toml` for `host` under `dir`, in file order:
 * looked up in `<dir>/<host, ":port" written "_port_">`, then `<dir>/<host>`, then
 * `<dir>/_default` (§4.5), the first file found. Mirrors are `[host."<url>"]` tables; their
 * `ca` (string or list), `skip_verify` and `ping_url` carry over. Empty when no file;
 * InvalidArgument naming the file when it does not parse or a mirror URL is not http(s).
 */
export function mirrorsOf(dir: string, host: string): Mirror[] {
  const candidates = [host.replace(/:(\d+)$/, "_$1_"), host, "_default"];
  for (const c of candidates) {
    const file = join(dir, c, "hosts.toml");
    if (!existsSync(file)) continue;
    let doc: Record<string, unknown>;
    try {
      doc = Bun.TOML.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw invalidArgument(`mirrors config ${file}: ${(e as Error).message}`);
    }
    const hosts = isObj(doc.host) ? doc.host : {};
    return Object.entries(hosts).map(([url, v]) => {
      const m = url.match(/^(https?):\/\/([^/]+)/);
      if (!m) throw invalidArgument(`mirrors config ${file}: mirror ${JSON.stringify(url)} is not an http(s) URL`);
      const t = isObj(v) ? v : {};
      const ca = typeof t.ca === "string" ? [t.ca] : Array.isArray(t.ca) ? t.ca.filter((x): x is string => typeof x === "string") : [];
      const mirror: Mirror = { scheme: m[1] as "http" | "https", host: m[2] as string, ca, skipVerify: t.skip_verify === true };
      if (typeof t.ping_url === "string" && t.ping_url !== "") mirror.pingUrl = t.ping_url;
      return mirror;
    });
  }
  return [];
}

/** Asks `url` whether a mirror is up: true on a 2xx answer within 3 s. */
export type MirrorPing = (url: string) => Promise<boolean>;

/**
 * The mirror to use for `host` (see {@link mirrorsOf}): the first one without a `ping_url`,
 * or whose ping answers 2xx within 3 s; undefined when none is usable (the origin is used).
 */
export async function pickMirror(
  dir: string,
  host: string,
  ping: MirrorPing = (url) => httpPing(url)(new AbortController().signal),
): Promise<Mirror | undefined> {
  for (const m of mirrorsOf(dir, host)) {
    if (m.pingUrl === undefined || (await ping(m.pingUrl))) return m;
  }
  return undefined;
}
