import { invalidArgument } from "../errdefs/index.ts";

/** A parsed image reference: `host/repository[:tag][@digest]`. */
export interface ImageRef {
  /** Registry host as written (`127.0.0.1:5000`, `docker.io`). */
  host: string;
  /** Repository path (`library/busybox`). */
  repository: string;
  /** Tag, when given (defaults to `latest` when neither tag nor digest is). */
  tag?: string;
  /** Digest, when given (`sha256:…`). */
  digest?: string;
}

const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/**
 * Parses an image reference the way containerd and docker do: the first path component is
 * a registry host when it has a `.` or `:` or is `localhost`, else the host is `docker.io`
 * (and a single-component repository gets `library/`). No tag and no digest means `latest`.
 * Throws InvalidArgument naming the reference and the part that is wrong.
 */
export function parseImageRef(ref: string): ImageRef {
  const bad = (why: string) => invalidArgument(`image reference ${JSON.stringify(ref)}: ${why}`);
  if (ref === "" || ref.length > 4096) throw bad("empty or too long");
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`invalid digest ${JSON.stringify(digest)}`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`invalid tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split("/");
  let host = "docker.io";
  const first = parts[0] ?? "";
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    host = first;
    parts.shift();
  }
  if (host === "docker.io" && parts.length === 1) parts.unshift("library");
  for (const c of parts) if (!COMPONENT.test(c)) throw bad(`invalid repository component ${JSON.stringify(c)}`);
  if (!digest && !tag) tag = "latest";
  return { host, repository: parts.join("/"), tag, digest };
}

/** The reference as text: `host/repository[:tag][@digest]`. */
export function formatImageRef(r: ImageRef): string {
  return `${r.host}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}

/** The manifest reference to request: the digest when pinned, else the tag. */
export const manifestRefOf = (r: ImageRef): string => r.digest ?? r.tag ?? "latest";

/** The API endpoint host for a registry host (`docker.io` is served by `registry-1.docker.io`). */
export const endpointHost = (host: string): string => (host === "docker.io" ? "registry-1.docker.io" : host);

/**
 * True for hosts where plain HTTP is used without being asked: loopback (`localhost`,
 * `127.x`, `[::1]`), as containerd and docker allow.
 */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : (host.split(":")[0] ?? "");
  return name === "localhost" || name === "::1" || /^127\.\d+\.\d+\.\d+$/.test(name);
}
