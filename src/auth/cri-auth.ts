// PullImage credentials the CRI proxy saw, kept in memory only.
import { formatImageRef, parseImageRef, type Credentials } from "../registry/index.ts";

/** The `AuthConfig` of a CRI PullImage request (the fields rafsnap reads). */
export interface CriAuthConfig {
  username: string;
  password: string;
  /** base64 `user:password`. */
  auth: string;
  identityToken: string;
  registryToken: string;
}

/**
 * The credentials of a CRI `AuthConfig`: username/password, else the base64 `auth`, else an
 * identity or registry token (handed to nydusd as a `registry_token`). Undefined when it
 * holds none or `auth` is not base64 of `user:password`.
 */
export function credentialsOfAuthConfig(a: CriAuthConfig | undefined): Credentials | undefined {
  if (!a) return undefined;
  if (a.username !== "" || a.password !== "") return { username: a.username, password: a.password };
  if (a.auth !== "") {
    const text = Buffer.from(a.auth, "base64").toString("utf8");
    const i = text.indexOf(":");
    return i > 0 ? { username: text.slice(0, i), password: text.slice(i + 1) } : undefined;
  }
  if (a.identityToken !== "") return { identityToken: a.identityToken };
  if (a.registryToken !== "") return { identityToken: a.registryToken };
  return undefined;
}

/** The key an image is kept under: its normalized reference; undefined when it does not parse. */
function keyOf(image: string): string | undefined {
  try {
    return formatImageRef(parseImageRef(image));
  } catch {
    return undefined;
  }
}

/**
 * PullImage credentials per image reference (normalized: `busybox` and
 * `docker.io/library/busybox:latest` are one key), in memory only: lost when rafsnap
 * restarts, never logged, never written except into the daemons' 0600 configs.
 */
export class CriAuthStore {
  private readonly byImage = new Map<string, Credentials>();

  /** Keeps `creds` for `image` (replacing older ones); ignored for a reference that does not parse. */
  set(image: string, creds: Credentials): void {
    const k = keyOf(image);
    if (k !== undefined) this.byImage.set(k, creds);
  }

  /** The credentials kept for `image`, if any. */
  get(image: string): Credentials | undefined {
    const k = keyOf(image);
    return k === undefined ? undefined : this.byImage.get(k);
  }

  /** Number of images with credentials. */
  get size(): number {
    return this.byImage.size;
  }
}
