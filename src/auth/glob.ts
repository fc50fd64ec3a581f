// Image matching of the kubelet's credential providers (`matchImages`, and the keys of a
// plugin's `auth` map): the facts are the kubelet's, the code is ours.

/** An image or glob split the way the kubelet compares them. */
interface Split {
  /** Host name labels (split at "."). */
  labels: string[];
  /** Port, "" when none. */
  port: string;
  /** Everything from the first "/" after the host ("" when none). */
  path: string;
}

function split(s: string): Split {
  const noScheme = s.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = noScheme.indexOf("/");
  const hostPort = slash < 0 ? noScheme : noScheme.slice(0, slash);
  const path = slash < 0 ? "" : noScheme.slice(slash);
  const m = hostPort.match(/^(.*):(\d*)$/);
  const host = m && !hostPort.endsWith("]") ? (m[1] as string) : hostPort;
  const port = m && !hostPort.endsWith("]") ? (m[2] as string) : "";
  return { labels: host.split("."), port, path };
}

/**
 * One label glob as a RegExp, with the rules of a path glob on a single segment: `*` any run
 * of characters, `?` one, `[...]` a class (`^` negates, `a-z` ranges), `\` escapes. Null for
 * a malformed glob (an unclosed class), which then matches nothing.
 */
function labelRegExp(glob: string): RegExp | null {
  let re = "^";
  let ok = true;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\") {
      i++;
      if (i >= glob.length) ok = false;
      else re += escapeRe(glob[i] as string);
    } else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) {
        ok = false;
        break;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith("^");
      if (negate) body = body.slice(1);
      if (body === "") ok = false;
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]]/g, (x) => `\\${x}`)}]`;
      i = end;
    } else re += escapeRe(c);
  }
  if (!ok) return null;
  try {
    return new RegExp(`${re}$`, "s");
  } catch {
    return null;
  }
}

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/-]/g, (x) => `\\${x}`);

/**
 * True when `image` (`host[:port]/path[:tag]`, a scheme ignored) matches `glob` by the
 * kubelet's rules: the host names have the same number of dot-separated labels and each
 * label matches its glob label (`*.example.com` matches `a.example.com`, not
 * `a.b.example.com` nor `example.com`); the ports are equal (no wildcard: a glob without a
 * port matches only images without one); the glob's path is a prefix of the image's. Never
 * throws: a malformed glob matches nothing.
 */
export function imageMatches(glob: string, image: string): boolean {
  const g = split(glob);
  const t = split(image);
  if (g.port !== t.port || g.labels.length !== t.labels.length || !t.path.startsWith(g.path)) return false;
  return g.labels.every((l, i) => labelRegExp(l)?.test(t.labels[i] as string) === true);
}

/** The registry part of an image (`host[:port]`), the kubelet's `Registry` cache key. */
export function registryOf(image: string): string {
  const noScheme = image.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = noScheme.indexOf("/");
  return slash < 0 ? noScheme : noScheme.slice(0, slash);
}
