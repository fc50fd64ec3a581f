// Kubelet credential provider plugins (KEP-2133): the CredentialProviderConfig file, the exec
// protocol (CredentialProviderRequest on stdin, CredentialProviderResponse on stdout) and the
// response cache. Credentials never reach a log or an error message.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseGoDuration } from "../config/index.ts";
import { ErrorKind, invalidArgument, RafsnapError } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import type { Credentials } from "../registry/index.ts";
import { imageMatches, registryOf } from "./glob.ts";

const CONFIG_VERSIONS = ["kubelet.config.k8s.io/v1", "kubelet.config.k8s.io/v1beta1", "kubelet.config.k8s.io/v1alpha1"];
const PLUGIN_VERSIONS = ["credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1beta1", "credentialprovider.kubelet.k8s.io/v1alpha1"];

/** One `providers[]` entry of a CredentialProviderConfig. */
export interface CredentialProvider {
  /** Plugin executable name, run from the bin dir. */
  name: string;
  /** Image globs the plugin is asked about. */
  matchImages: string[];
  /** Cache time when the response names none (ms; 0 = not cached). */
  defaultCacheMs: number;
  /** The CredentialProviderRequest/Response `apiVersion`. */
  apiVersion: string;
  args: string[];
  env: { name: string; value: string }[];
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string");

/**
 * Parses a kubelet CredentialProviderConfig (YAML or JSON; `apiVersion`
 * `kubelet.config.k8s.io/v1`, v1beta1 or v1alpha1; `kind: CredentialProviderConfig`) with the
 * kubelet's checks: at least one provider; each with a plain file `name` (unique), non-empty
 * `matchImages`, a Go duration `defaultCacheDuration` and a
 * `credentialprovider.kubelet.k8s.io` `apiVersion`; optional `args` (strings) and `env`
 * (`name`/`value`). InvalidArgument naming `file` and the field otherwise.
 */
export function parseProviderConfig(text: string, file: string): CredentialProvider[] {
  const bad = (why: string) => invalidArgument(`credential provider config ${file}: ${why}`);
  let doc: unknown;
  try {
    doc = Bun.YAML.parse(text);
  } catch (e) {
    throw bad(`not YAML or JSON: ${(e as Error).message}`);
  }
  if (!isObj(doc)) throw bad("not a mapping");
  if (!CONFIG_VERSIONS.includes(String(doc.apiVersion))) throw bad(`apiVersion ${JSON.stringify(doc.apiVersion)} is not one of ${CONFIG_VERSIONS.join(", ")}`);
  if (doc.kind !== "CredentialProviderConfig") throw bad(`kind ${JSON.stringify(doc.kind)} is not CredentialProviderConfig`);
  if (!Array.isArray(doc.providers) || doc.providers.length === 0) throw bad("providers: at least one provider is required");
  const seen = new Set<string>();
  return doc.providers.map((p, i) => {
    const at = `providers[${i}]`;
    if (!isObj(p)) throw bad(`${at}: not a mapping`);
    const name = p.name;
    if (typeof name !== "string" || name === "" || name === "." || name === ".." || name.includes("/")) throw bad(`${at}.name: a plain file name is required`);
    if (seen.has(name)) throw bad(`${at}.name: ${JSON.stringify(name)} is listed twice`);
    seen.add(name);
    if (!isStrings(p.matchImages) || p.matchImages.length === 0) throw bad(`${at}.matchImages: a non-empty list of image globs is required`);
    const dur = typeof p.defaultCacheDuration === "string" ? parseGoDuration(p.defaultCacheDuration) : undefined;
    if (dur === undefined || dur < 0) throw bad(`${at}.defaultCacheDuration: a Go duration ("12h", "0s") is required`);
    if (!PLUGIN_VERSIONS.includes(String(p.apiVersion)))
      throw bad(`${at}.apiVersion ${JSON.stringify(p.apiVersion)} is not one of ${PLUGIN_VERSIONS.join(", ")}`);
    if (p.args !== undefined && !isStrings(p.args)) throw bad(`${at}.args: a list of strings`);
    const env = p.env ?? [];
    if (!Array.isArray(env) || !env.every((e) => isObj(e) && typeof e.name === "string" && e.name !== "" && typeof e.value === "string")) {
      throw bad(`${at}.env: a list of {name, value} strings`);
    }
    return {
      name,
      matchImages: p.matchImages,
      defaultCacheMs: dur / 1e6,
      apiVersion: p.apiVersion as string,
      args: (p.args as string[] | undefined) ?? [],
      env: env as { name: string; value: string }[],
    };
  });
}

/** Reads and parses the CredentialProviderConfig `file` ({@link parseProviderConfig}); InvalidArgument when unreadable. */
export function loadProviderConfig(file: string): CredentialProvider[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw invalidArgument(`credential provider config ${file}: ${(e as Error).message}`);
  }
  return parseProviderConfig(text, file);
}

/** A plugin's answer: credentials by match key, and how long they may be reused. */
interface PluginAnswer {
  keyType: "Image" | "Registry" | "Global";
  /** ms; undefined when the response names no duration. */
  cacheMs: number | undefined;
  auth: Map<string, { username: string; password: string }>;
}

/** Limits of one plugin run. */
export interface PluginLimits {
  /** Time the plugin may take (default 30 s); it is killed after. */
  timeoutMs: number;
  /** Largest stdout accepted (default 1 MiB). */
  maxOutput: number;
}

const DEFAULT_LIMITS: PluginLimits = { timeoutMs: 30_000, maxOutput: 1 << 20 };

/** Reads at most `max` bytes of `stream`; undefined when there were more. */
async function readCapped(stream: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of stream) {
    size += c.byteLength;
    if (size > max) return undefined;
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/**
 * Runs the plugin of `p` from `binDir` for `image`: the request JSON on stdin, `args`, the
 * process environment plus `env`. Unauthenticated naming the plugin (never its output) when
 * it cannot start, exits non-zero, runs out of time (killed), writes more than the limit,
 * or answers something that is not a CredentialProviderResponse of its `apiVersion` with a
 * `cacheKeyType` of Image, Registry or Global and `auth` entries of strings.
 */
export async function runPlugin(p: CredentialProvider, binDir: string, image: string, limits: PluginLimits = DEFAULT_LIMITS): Promise<PluginAnswer> {
  const fail = (why: string) => new RafsnapError(ErrorKind.Unauthenticated, `credential provider plugin ${p.name} (image ${image}): ${why}`);
  const request = JSON.stringify({ apiVersion: p.apiVersion, kind: "CredentialProviderRequest", image });
  let proc: ReturnType<typeof Bun.spawn<Blob, "pipe", "ignore">>;
  try {
    proc = Bun.spawn([join(binDir, p.name), ...p.args], {
      // A Blob: written by the runtime, and a plugin that does not read it is no error.
      stdin: new Blob([request]),
      stdout: "pipe",
      stderr: "ignore",
      detached: true,
      env: { ...process.env, ...Object.fromEntries(p.env.map((e) => [e.name, e.value])) },
    });
  } catch (e) {
    throw fail(`cannot be run from ${binDir}: ${(e as Error).message}`);
  }
  // Its own process group: a timeout kills whatever the plugin started too.
  const killAll = () => {
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      proc.kill("SIGKILL");
    }
  };
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      killAll();
      resolve(undefined);
    }, limits.timeoutMs);
  });
  let out: Uint8Array | undefined;
  let code: number | undefined;
  try {
    out = await Promise.race([readCapped(proc.stdout, limits.maxOutput), deadline]);
    if (out === undefined) killAll();
    code = await Promise.race([proc.exited, deadline]);
  } catch (e) {
    killAll();
    throw fail(`talking to it failed: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) throw fail(`no answer within ${limits.timeoutMs} ms; killed`);
  if (out === undefined) throw fail(`it wrote more than ${limits.maxOutput} bytes; killed`);
  if (code !== 0) throw fail(`exited with code ${code} (its output is not shown: it may hold secrets)`);
  let r: unknown;
  try {
    r = JSON.parse(new TextDecoder().decode(out));
  } catch {
    throw fail("its answer is not JSON");
  }
  if (!isObj(r) || r.kind !== "CredentialProviderResponse") throw fail("its answer is not a CredentialProviderResponse");
  if (r.apiVersion !== p.apiVersion) throw fail(`it answered apiVersion ${JSON.stringify(r.apiVersion)}, the config says ${p.apiVersion}`);
  if (r.cacheKeyType !== "Image" && r.cacheKeyType !== "Registry" && r.cacheKeyType !== "Global")
    throw fail(`cacheKeyType ${JSON.stringify(r.cacheKeyType)} is not Image, Registry or Global`);
  let cacheMs: number | undefined;
  if (r.cacheDuration !== undefined && r.cacheDuration !== null) {
    const ns = typeof r.cacheDuration === "string" ? parseGoDuration(r.cacheDuration) : undefined;
    if (ns === undefined || ns < 0) throw fail("cacheDuration is not a Go duration");
    cacheMs = ns / 1e6;
  }
  const auth = new Map<string, { username: string; password: string }>();
  if (r.auth !== undefined && r.auth !== null) {
    if (!isObj(r.auth)) throw fail("auth is not a map");
    for (const [k, v] of Object.entries(r.auth)) {
      if (!isObj(v) || typeof v.username !== "string" || typeof v.password !== "string")
        throw fail(`auth entry ${JSON.stringify(k)} needs string username and password`);
      auth.set(k, { username: v.username, password: v.password });
    }
  }
  return { keyType: r.cacheKeyType, cacheMs, auth };
}

/** The credentials of `answer` for `image`: the most specific matching key (reverse sort order, as the kubelet tries them). */
function pick(answer: PluginAnswer, image: string): Credentials | undefined {
  const keys = [...answer.auth.keys()].sort().reverse();
  const k = keys.find((key) => imageMatches(key, image));
  return k === undefined ? undefined : answer.auth.get(k);
}

/** What {@link KubeletProviders} needs. */
export interface KubeletProvidersOptions {
  providers: CredentialProvider[];
  /** `[remote.auth] credential_provider_bin_dir`. */
  binDir: string;
  logger: Logger;
  limits?: PluginLimits;
  /** Milliseconds since the epoch; `Date.now` unless a test steps time. */
  now?: () => number;
}

/** Most answers kept (Image keys grow with the images a node runs). */
const MAX_CACHED = 4096;

interface Cached {
  answer: PluginAnswer;
  expiresAt: number;
}

/**
 * The credential providers of one CredentialProviderConfig: for an image, the providers
 * whose `matchImages` match it are asked in config order, and the first credentials whose
 * auth key matches the image are used. Answers are cached per provider under the key their
 * `cacheKeyType` names (the image, its registry, or one global entry) for their
 * `cacheDuration` (else the provider's `defaultCacheDuration`; 0 = not cached); concurrent
 * lookups of one key share a plugin run.
 */
export class KubeletProviders {
  private readonly cache = new Map<string, Cached>();
  private readonly running = new Map<string, Promise<PluginAnswer>>();
  private readonly log: Logger;

  constructor(private readonly opts: KubeletProvidersOptions) {
    this.log = opts.logger.withTag("auth");
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * Credentials for `image`, or undefined when no provider matches or none answers with a
   * matching key. A failing plugin is logged (by name, with why — never its output) and the
   * next provider asked; `fresh` skips the cache (renewal).
   */
  async lookup(image: string, fresh = false): Promise<Credentials | undefined> {
    for (const p of this.opts.providers) {
      if (!p.matchImages.some((g) => imageMatches(g, image))) continue;
      let answer: PluginAnswer;
      try {
        answer = await this.answer(p, image, fresh);
      } catch (e) {
        this.log.warn((e as Error).message);
        continue;
      }
      const creds = pick(answer, image);
      if (creds) return creds;
    }
    return undefined;
  }

  /** Drops expired answers, then the oldest ones while there are too many. */
  private prune(): void {
    const now = this.now();
    for (const [k, c] of this.cache) if (c.expiresAt <= now) this.cache.delete(k);
    for (const k of this.cache.keys()) {
      if (this.cache.size <= MAX_CACHED) break;
      this.cache.delete(k);
    }
  }

  private cached(p: CredentialProvider, image: string): PluginAnswer | undefined {
    const now = this.now();
    for (const key of [`${p.name}\0Image\0${image}`, `${p.name}\0Registry\0${registryOf(image)}`, `${p.name}\0Global`]) {
      const c = this.cache.get(key);
      if (c && c.expiresAt > now) return c.answer;
      if (c) this.cache.delete(key);
    }
    return undefined;
  }

  private async answer(p: CredentialProvider, image: string, fresh: boolean): Promise<PluginAnswer> {
    const hit = fresh ? undefined : this.cached(p, image);
    if (hit) return hit;
    const runKey = `${p.name}\0${image}`;
    let run = this.running.get(runKey);
    if (!run) {
      run = runPlugin(p, this.opts.binDir, image, this.opts.limits);
      this.running.set(runKey, run);
      run.finally(() => this.running.delete(runKey)).catch(() => {});
    }
    const answer = await run;
    const ttl = answer.cacheMs ?? p.defaultCacheMs;
    if (ttl > 0) {
      const key =
        answer.keyType === "Image"
          ? `${p.name}\0Image\0${image}`
          : answer.keyType === "Registry"
            ? `${p.name}\0Registry\0${registryOf(image)}`
            : `${p.name}\0Global`;
      this.cache.set(key, { answer, expiresAt: this.now() + ttl });
      if (this.cache.size > MAX_CACHED) this.prune();
    }
    return answer;
  }
}
