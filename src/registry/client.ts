import ky, { HTTPError, type KyInstance } from "ky";
import { ErrorKind, RafsnapError, invalidArgument, unavailable } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import { basicAuth, type Challenge, type Credentials, parseChallenge } from "./auth.ts";
import { BodyLimit, checkDigest, idleChunks, readBody } from "./body.ts";
import { registryError } from "./errors.ts";
import { endpointHost, isLoopbackHost } from "./reference.ts";

/**
 * Bun fetch's `tls` init field for a custom CA and/or `skip_verify`; undefined for the
 * system's defaults.
 */
export function fetchTls(caCert: string | undefined, skipVerify: boolean | undefined): { ca?: string; rejectUnauthorized: boolean } | undefined {
  return caCert || skipVerify ? { ca: caCert, rejectUnauthorized: !skipVerify } : undefined;
}

/** Media types accepted when fetching a manifest (OCI and Docker, images and indexes). */
export const MANIFEST_MEDIA_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
] as const;

/** How to reach one registry. */
export interface RegistryOptions {
  /**
   * true: http://; false: https:// even on loopback; unset: http:// for loopback hosts (as
   * containerd and docker do) and https:// for any other.
   */
  plainHttp?: boolean;
  /** PEM CA certificate(s) to trust for TLS, in addition to the system's. */
  caCert?: string;
  /** Do not verify the TLS certificate (`skip_verify`). */
  skipVerify?: boolean;
  credentials?: Credentials;
  /**
   * A bearer token to send as it is (nydusd's `registry_token`), until a challenge gets a
   * scoped token instead.
   */
  bearerToken?: string;
  /** Attempts after the first for idempotent requests and interrupted blob reads; default 3. */
  retries?: number;
  /** Per-attempt time limit to get response headers, ms; default 60 s. */
  timeoutMs?: number;
  /**
   * Extra headers sent with every request to this registry (a mirror's `headers`), never to
   * its token service. Names are matched case-insensitively; the headers a request sets
   * itself (`range`, `accept`, `authorization`, …) win. Never logged.
   */
  headers?: Record<string, string>;
  logger?: Logger;
}

/** A fetched manifest: its bytes exactly as served, its media type and digest. */
export interface FetchedManifest {
  mediaType: string;
  digest: string;
  bytes: Uint8Array;
}

interface Token {
  header: string;
  expiresAt: number;
}

/**
 * Client of one registry's OCI distribution API (`/v2/`) on ky: manifests, ranged and
 * resumable blob reads, blob uploads and manifest pushes, with the bearer-token flow
 * (anonymous or with credentials), basic auth, retries with backoff on 5xx/429 and
 * connection failures, custom CA or skip-verify. Errors are RafsnapErrors whose kind comes
 * from the HTTP status (401 Unauthenticated, 403 PermissionDenied, 404 NotFound, 5xx
 * Unavailable) and whose message names the repository and digest. Credentials and tokens
 * are never logged or put in messages.
 */
export class RegistryClient {
  readonly base: string;
  private readonly http: KyInstance;
  private readonly tokens = new Map<string, Token>();
  private challenge: Challenge | undefined;
  private readonly retries: number;
  private readonly extraHeaders: Record<string, string>;
  /** The registry's origin: the only one that gets credentials, tokens and custom headers. */
  private readonly origin: string;
  /** Per-attempt limit for headers, and the idle limit between pieces of a body, ms. */
  private readonly timeoutMs: number;

  constructor(
    readonly host: string,
    private opts: RegistryOptions = {},
  ) {
    const scheme = (opts.plainHttp ?? isLoopbackHost(host)) ? "http" : "https";
    this.base = `${scheme}://${endpointHost(host)}`;
    this.origin = new URL(this.base).origin;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.retries = opts.retries ?? 3;
    this.extraHeaders = Object.fromEntries(Object.entries(opts.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    const tls = fetchTls(opts.caCert, opts.skipVerify);
    const retryStatuses = new Set([408, 429, 500, 502, 503, 504]);
    this.http = ky.create({
      // ky retries a status only when it throws for it; `send` turns the final HTTPError
      // back into its response, so callers see every status the same way.
      throwHttpErrors: (status) => retryStatuses.has(status),
      timeout: this.timeoutMs,
      retry: {
        limit: this.retries,
        methods: ["get", "head", "put", "delete"],
        statusCodes: [...retryStatuses],
        backoffLimit: 2_000,
      },
      // Bun's fetch takes TLS settings as a `tls` init field.
      fetch: tls ? (input, init) => fetch(input, { ...init, tls } as RequestInit) : undefined,
    });
  }

  private scopeOf(repo: string, push: boolean): string {
    return `repository:${repo}:${push ? "pull,push" : "pull"}`;
  }

  private authHeader(scope: string): string | undefined {
    const t = this.tokens.get(scope);
    if (t && t.expiresAt > Date.now()) return t.header;
    const c = this.opts.credentials;
    if (this.challenge?.scheme === "basic" && c && "username" in c) return basicAuth(c);
    if (this.opts.bearerToken) return `Bearer ${this.opts.bearerToken}`;
    return undefined;
  }

  /**
   * Replaces the credentials and bearer token (nydusd's `PUT /api/v1/config` auth reload);
   * tokens fetched with the old ones are dropped.
   */
  setAuth(auth: { credentials?: Credentials; bearerToken?: string }): void {
    this.opts = { ...this.opts, credentials: auth.credentials, bearerToken: auth.bearerToken };
    this.tokens.clear();
    this.challenge = undefined;
  }

  /** Answers a 401 challenge: fetches a bearer token for `scope` (or switches to basic). */
  private async authenticate(ch: Challenge, scope: string, what: string): Promise<void> {
    this.challenge = ch;
    if (ch.scheme === "basic") {
      if (!this.opts.credentials || !("username" in this.opts.credentials)) {
        throw new RafsnapError(ErrorKind.Unauthenticated, `${what}: the registry asks for credentials and none are configured`);
      }
      return;
    }
    if (ch.scheme !== "bearer" || !ch.params.realm) {
      throw new RafsnapError(ErrorKind.Unauthenticated, `${what}: unsupported authentication challenge ${ch.scheme}`);
    }
    let url: URL;
    try {
      url = new URL(ch.params.realm);
    } catch {
      throw new RafsnapError(ErrorKind.Unauthenticated, `${what}: the token realm is not a URL`);
    }
    // Credentials go to the realm only over https when the registry itself is https.
    if (url.protocol !== "https:" && !(url.protocol === "http:" && this.base.startsWith("http:"))) {
      throw new RafsnapError(
        ErrorKind.PermissionDenied,
        `${what}: the registry ${this.origin} names a token service on ${url.protocol}//${url.host}; credentials are sent only over https from an https registry`,
      );
    }
    if (ch.params.service) url.searchParams.set("service", ch.params.service);
    url.searchParams.set("scope", scope);
    const c = this.opts.credentials;
    let res: Response;
    if (c && "identityToken" in c) {
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: c.identityToken, scope, client_id: "rafsnap" });
      if (ch.params.service) form.set("service", ch.params.service);
      res = await this.http.post(url.origin + url.pathname, { body: form, redirect: "manual" });
    } else {
      res = await this.http.get(url, { headers: c ? { authorization: basicAuth(c) } : {}, redirect: "manual" });
    }
    const tokenWhat = `${what}: token request to ${url.origin}${url.pathname}`;
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => {});
      throw new RafsnapError(
        ErrorKind.Unauthenticated,
        `${tokenWhat}: redirected (HTTP ${res.status}); token services are not followed elsewhere with credentials`,
      );
    }
    if (!res.ok) throw await registryError(tokenWhat, res, this.timeoutMs);
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse(new TextDecoder().decode(await readBody(res, tokenWhat, { max: BodyLimit.token, idleMs: this.timeoutMs })));
    } catch (e) {
      if (e instanceof RafsnapError) throw e;
      throw new RafsnapError(ErrorKind.Unauthenticated, `${tokenWhat}: the answer is not JSON`);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new RafsnapError(ErrorKind.Unauthenticated, `${what}: the token service answered without a token`);
    const ttl = Math.max(30, body.expires_in ?? 60) * 1000;
    this.tokens.set(scope, { header: `Bearer ${token}`, expiresAt: Date.now() + ttl - 10_000 });
  }

  /**
   * Sends one request to `url` (absolute, or a path under the registry's base), answering
   * one authentication challenge of the registry's own origin, and following up to 10
   * redirects itself: https → http is refused (PermissionDenied); a hop to another origin
   * carries neither credentials nor the registry's custom headers, and a challenge from there
   * is not answered. Returns the final response whatever its status.
   */
  private async send(
    method: string,
    url: string,
    init: { repo: string; push?: boolean; what: string; headers?: Record<string, string>; body?: Uint8Array },
  ): Promise<Response> {
    const full = url.startsWith("http") ? url : `${this.base}${url}`;
    const scope = this.scopeOf(init.repo, init.push === true);
    let answered = false;
    let at = full;
    let verb = method;
    let body = init.body;
    for (let hops = 0; ; ) {
      const own = new URL(at).origin === this.origin;
      const headers: Record<string, string> = own ? { ...this.extraHeaders, ...init.headers } : { ...init.headers };
      const auth = own ? this.authHeader(scope) : undefined;
      if (auth) headers.authorization = auth;
      let res: Response;
      try {
        res = await this.http(at, { method: verb, headers, body, redirect: "manual" });
      } catch (e) {
        if (!(e instanceof HTTPError)) throw unavailable(`${init.what}: ${(e as Error).message}`, e);
        res = e.response;
      }
      this.opts.logger?.debug(`${verb} ${new URL(at).host}${new URL(at).pathname} → ${res.status}`);
      if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.get("location")) {
        await res.body?.cancel().catch(() => {});
        if (++hops > 10) throw unavailable(`${init.what}: more than 10 redirects`);
        let next: URL;
        try {
          next = new URL(res.headers.get("location") as string, at);
        } catch {
          throw unavailable(`${init.what}: the registry redirected to something that is not a URL`);
        }
        if (next.protocol !== "https:" && (next.protocol !== "http:" || at.startsWith("https:"))) {
          throw new RafsnapError(
            ErrorKind.PermissionDenied,
            `${init.what}: redirect from ${new URL(at).origin} to ${next.protocol}//${next.host} refused (never from https to http)`,
          );
        }
        if (res.status === 303 && verb !== "HEAD") {
          verb = "GET";
          body = undefined;
        }
        at = next.toString();
        continue;
      }
      if (res.status !== 401 || answered || !own) return res;
      const ch = parseChallenge(res.headers.get("www-authenticate"));
      if (!ch) return res;
      await res.body?.cancel();
      await this.authenticate(ch, scope, init.what);
      answered = true;
      // After a challenge, start again from the registry's own URL.
      at = full;
      verb = method;
      body = init.body;
    }
  }

  /**
   * The manifest or index `ref` (tag or digest) of `repo`, as served. When `ref` is a digest
   * the bytes are checked against it (InvalidArgument on mismatch).
   */
  async getManifest(repo: string, ref: string, accept: readonly string[] = MANIFEST_MEDIA_TYPES): Promise<FetchedManifest> {
    const what = `manifest ${repo}:${ref} from ${this.host}`;
    if (ref.includes(":")) checkDigest(ref, what);
    else if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(ref)) throw invalidArgument(`${what}: not a tag or a sha256 digest`);
    const res = await this.send("GET", `/v2/${repo}/manifests/${ref}`, { repo, what, headers: { accept: accept.join(", ") } });
    if (!res.ok) throw await registryError(what, res, this.timeoutMs);
    const bytes = await readBody(res, what, { max: BodyLimit.manifest, idleMs: this.timeoutMs });
    const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
    if (ref.includes(":") && ref !== digest) throw invalidArgument(`${what}: content has digest ${digest}`);
    const mediaType = res.headers.get("content-type")?.split(";")[0]?.trim() || mediaTypeOf(bytes);
    return { mediaType, digest, bytes };
  }

  /** Size of blob `digest` in `repo`, or null when the registry does not have it. */
  async blobSize(repo: string, digest: string): Promise<number | null> {
    const what = `blob ${digest} in ${repo} on ${this.host}`;
    checkDigest(digest, what);
    const res = await this.send("HEAD", `/v2/${repo}/blobs/${digest}`, { repo, what });
    if (res.status === 404) return null;
    if (!res.ok) throw await registryError(what, res, this.timeoutMs);
    return Number(res.headers.get("content-length") ?? "0");
  }

  /**
   * Streams blob `digest` of `repo` from byte `start` up to (not including) `end`. An
   * interrupted body is resumed with a Range request from where it stopped, up to `retries`
   * times; a registry that ignores Range is handled by skipping. Does not verify the
   * digest (callers that read whole blobs do, see {@link readBlob}).
   */
  async *blobStream(repo: string, digest: string, start = 0, end?: number): AsyncGenerator<Uint8Array> {
    const what = `blob ${digest} in ${repo} on ${this.host}`;
    checkDigest(digest, what);
    let pos = start;
    for (let failures = 0; ; ) {
      const headers: Record<string, string> = {};
      if (pos > 0 || end !== undefined) headers.range = `bytes=${pos}-${end !== undefined ? end - 1 : ""}`;
      const res = await this.send("GET", `/v2/${repo}/blobs/${digest}`, { repo, what, headers });
      if (!res.ok) throw await registryError(what, res, this.timeoutMs);
      let skip = res.status === 200 ? pos : 0; // Range ignored: the body starts at 0
      try {
        for await (const chunk of idleChunks(res, what, this.timeoutMs)) {
          let c = chunk;
          if (skip > 0) {
            const n = Math.min(skip, c.length);
            skip -= n;
            c = c.subarray(n);
          }
          if (end !== undefined && pos + c.length > end) c = c.subarray(0, end - pos);
          if (c.length === 0) continue;
          pos += c.length;
          yield c;
          if (end !== undefined && pos >= end) return;
        }
        if (end !== undefined && pos < end) throw new Error(`body ended at byte ${pos}, expected ${end}`);
        return;
      } catch (e) {
        if (e instanceof RafsnapError && e.kind !== ErrorKind.DeadlineExceeded) throw e;
        await this.bodyFailed(++failures, what, `the body at byte ${pos} (resuming there)`, e);
      }
    }
  }

  /**
   * Counts the `failures`-th failed read of a response body (`doing` says which): ky retries
   * requests until their headers arrive, a body cut or stalled later is retried here. Throws
   * Unavailable naming `what` once the client's retries are spent; otherwise logs and backs
   * off (100 ms doubling, at most 2 s) before the caller asks again.
   */
  private async bodyFailed(failures: number, what: string, doing: string, e: unknown): Promise<void> {
    if (failures > this.retries) throw unavailable(`${what}: reading ${doing} failed: ${(e as Error).message}`, e);
    this.opts.logger?.warn(`${what}: reading ${doing} was interrupted, retrying (${failures}/${this.retries})`);
    await Bun.sleep(Math.min(2_000, 100 * 2 ** failures));
  }

  /**
   * Bytes `[start, end)` of blob `digest` in one piece: one Range request whose body is taken
   * whole by the runtime (no stream pieces to join — the data plane's cache misses). A body
   * cut short is requested again, up to the client's retries; a registry that ignores Range
   * is read through {@link blobStream}. Errors as {@link blobStream}.
   */
  async readRange(repo: string, digest: string, start: number, end: number): Promise<Uint8Array> {
    const what = `blob ${digest} in ${repo} on ${this.host}`;
    checkDigest(digest, what);
    for (let failures = 0; ; ) {
      const res = await this.send("GET", `/v2/${repo}/blobs/${digest}`, { repo, what, headers: { range: `bytes=${start}-${end - 1}` } });
      if (!res.ok) throw await registryError(what, res, this.timeoutMs);
      if (res.status !== 206) {
        await res.body?.cancel();
        const parts: Uint8Array[] = [];
        for await (const c of this.blobStream(repo, digest, start, end)) parts.push(c);
        return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
      }
      const range = res.headers.get("content-range");
      const m = range ? /^bytes (\d+)-(\d+)\//.exec(range) : null;
      if (!m || Number(m[1]) !== start || Number(m[2]) !== end - 1) {
        await res.body?.cancel().catch(() => {});
        throw new RafsnapError(
          ErrorKind.DataLoss,
          `${what}: asked for bytes ${start}-${end - 1}, the registry answered Content-Range ${JSON.stringify(range?.slice(0, 80) ?? null)}`,
        );
      }
      try {
        return await readBody(res, what, { max: end - start, idleMs: this.timeoutMs, exact: true });
      } catch (e) {
        if (e instanceof RafsnapError && e.kind === ErrorKind.ResourceExhausted) throw e;
        await this.bodyFailed(++failures, what, `the body of bytes ${start}-${end - 1}`, e);
      }
    }
  }

  /**
   * A whole blob in memory, at most `maxBytes` (ResourceExhausted beyond), verified against
   * its sha256 digest (InvalidArgument on mismatch) — for configs and other small blobs.
   */
  async readBlob(repo: string, digest: string, maxBytes: number = BodyLimit.config): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    const h = new Bun.CryptoHasher("sha256");
    let size = 0;
    for await (const c of this.blobStream(repo, digest)) {
      size += c.length;
      if (size > maxBytes)
        throw new RafsnapError(ErrorKind.ResourceExhausted, `blob ${digest} in ${repo} on ${this.host} is longer than the ${maxBytes} bytes allowed`);
      parts.push(c);
      h.update(c);
    }
    const got = `sha256:${h.digest("hex")}`;
    if (got !== digest) {
      throw invalidArgument(`blob ${digest} in ${repo} on ${this.host} has content digest ${got}`);
    }
    return Buffer.concat(parts);
  }

  /**
   * Uploads a blob unless the registry already has it: in memory (`Uint8Array`, one PUT) or
   * from a stream ({@link pushBlobStream}), so a blob of any size is never held whole. The
   * registry checks `digest` of an in-memory blob (a mismatch fails the PUT); a streamed one
   * whose content has another digest is InvalidArgument. Returns true when it uploaded, false
   * when the blob was there.
   */
  async pushBlob(repo: string, digest: string, data: Uint8Array | AsyncIterable<Uint8Array>): Promise<boolean> {
    checkDigest(digest, `upload of blob ${digest} to ${repo} on ${this.host}`);
    if ((await this.blobSize(repo, digest)) !== null) return false;
    const what = `upload of blob ${digest} to ${repo} on ${this.host}`;
    if (!(data instanceof Uint8Array)) {
      const pushed = await this.pushBlobStream(repo, data);
      if (pushed.digest !== digest) throw invalidArgument(`${what}: the streamed content has digest ${pushed.digest}`);
      return true;
    }
    const start = await this.send("POST", `/v2/${repo}/blobs/uploads/`, { repo, push: true, what });
    if (start.status !== 202) throw await registryError(what, start, this.timeoutMs);
    const res = await this.send("PUT", withDigest(this.locationOf(start, what), digest), {
      repo,
      push: true,
      what,
      headers: { "content-type": "application/octet-stream", "content-length": String(data.length) },
      body: data,
    });
    if (res.status !== 201) throw await registryError(what, res, this.timeoutMs);
    return true;
  }

  /**
   * Uploads a blob whose digest is not known in advance, from a stream (chunked upload: POST,
   * one PATCH per `partSize` bytes gathered, PUT with the sha256 computed on the way). Memory
   * stays within one part buffer. Returns the digest and size.
   */
  async pushBlobStream(repo: string, data: AsyncIterable<Uint8Array>, partSize = 8 << 20): Promise<{ digest: string; size: number }> {
    const what = `upload of a blob to ${repo} on ${this.host}`;
    const start = await this.send("POST", `/v2/${repo}/blobs/uploads/`, { repo, push: true, what });
    if (start.status !== 202) throw await registryError(what, start, this.timeoutMs);
    let location = this.locationOf(start, what);
    const hash = new Bun.CryptoHasher("sha256");
    // One reusable part buffer: each part is sent (and awaited) before it is refilled.
    const part = new Uint8Array(partSize);
    let fill = 0;
    let offset = 0;
    const flush = async () => {
      if (fill === 0) return;
      const body = part.subarray(0, fill);
      const res = await this.send("PATCH", location, {
        repo,
        push: true,
        what,
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${offset}-${offset + fill - 1}`,
          "content-length": String(fill),
        },
        body,
      });
      if (res.status !== 202) throw await registryError(`${what} (part at byte ${offset})`, res, this.timeoutMs);
      location = this.locationOf(res, what);
      offset += fill;
      fill = 0;
    };
    for await (const chunk of data) {
      hash.update(chunk);
      for (let o = 0; o < chunk.length; ) {
        const n = Math.min(chunk.length - o, partSize - fill);
        part.set(chunk.subarray(o, o + n), fill);
        fill += n;
        o += n;
        if (fill === partSize) await flush();
      }
    }
    await flush();
    const digest = `sha256:${hash.digest("hex")}`;
    const done = await this.send("PUT", withDigest(location, digest), { repo, push: true, what, headers: { "content-length": "0" } });
    if (done.status !== 201) throw await registryError(what, done, this.timeoutMs);
    return { digest, size: offset };
  }

  /** Pushes a manifest or index under `ref` (tag or digest); returns its digest. */
  async putManifest(repo: string, ref: string, mediaType: string, bytes: Uint8Array): Promise<string> {
    const what = `push of manifest ${repo}:${ref} to ${this.host}`;
    const res = await this.send("PUT", `/v2/${repo}/manifests/${ref}`, {
      repo,
      push: true,
      what,
      headers: { "content-type": mediaType },
      body: bytes,
    });
    if (res.status !== 201) throw await registryError(what, res, this.timeoutMs);
    return res.headers.get("docker-content-digest") ?? `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
  }

  /** The upload location `res` names, resolved against the URL that answered it. */
  private locationOf(res: Response, what: string): string {
    const loc = res.headers.get("location");
    if (!loc) throw new RafsnapError(ErrorKind.Unknown, `${what}: the registry sent no upload location`);
    return new URL(loc, res.url || this.base).toString();
  }
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set("digest", digest);
  return u.toString();
}

/** The `mediaType` field of a manifest body, for registries that send a generic content type. */
function mediaTypeOf(bytes: Uint8Array): string {
  try {
    return (JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: string }).mediaType ?? "";
  } catch {
    return "";
  }
}
