import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { invalidArgument } from "../errdefs/index.ts";

/** Registry credentials: a user and password, or an identity (refresh) token. */
export type Credentials = { username: string; password: string } | { identityToken: string };

/** One `WWW-Authenticate` challenge: scheme (lower-case) and its parameters. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header value (`Bearer realm="…",service="…",scope="…"` or
 * `Basic realm="…"`): the first challenge, parameters unquoted (`\"` escapes honoured).
 * Returns undefined for an empty or unparsable header.
 */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = header.trim().match(/^([A-Za-z][\w-]*)\s*(.*)$/s);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?\s*/gy;
  const rest = m[2] ?? "";
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest))) {
    params[(p[1] as string).toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] ?? "");
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}

/** Where the docker CLI keeps credentials: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function dockerConfigPath(env: Record<string, string | undefined> = process.env): string {
  return join(env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json");
}

interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

/**
 * Credentials for `host` from a docker `config.json` (`auths` entries keyed by host, by
 * `https://host`/`http://host`, or — for docker.io — `https://index.docker.io/v1/`; the
 * base64 `auth` field, `username`/`password`, or `identitytoken`). Returns undefined when the
 * file or the entry is missing; a file that is not valid JSON or an `auth` that is not
 * base64 `user:password` is InvalidArgument naming the file (never the secret).
 * Credential helpers (`credsStore`, `credHelpers`) are not run.
 */
export function credentialsFromDockerConfig(host: string, path = dockerConfigPath()): Credentials | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  let cfg: { auths?: Record<string, DockerAuthEntry> };
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`docker config ${path} is not valid JSON: ${(e as Error).message}`);
  }
  const keys = [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`];
  if (host === "docker.io" || host === "registry-1.docker.io") keys.push("https://index.docker.io/v1/", "index.docker.io");
  const entry = keys.map((k) => cfg.auths?.[k]).find((e) => e !== undefined);
  if (!entry) return undefined;
  if (entry.identitytoken) return { identityToken: entry.identitytoken };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i <= 0) throw invalidArgument(`docker config ${path}: the auth entry for ${host} is not base64 of user:password`);
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  if (entry.username && entry.password !== undefined) return { username: entry.username, password: entry.password };
  return undefined;
}

/** `Basic` authorization header value for user credentials. */
export function basicAuth(c: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}
