/**
 * Writes a {@link Config} back out as TOML, for `rafsnap config dump` and for logging the
 * effective configuration. A small serializer for the shapes a config holds: strings,
 * numbers, booleans, arrays of those, and nested tables written as `[a.b]` sections.
 */

import { internal } from "../errdefs/index.ts";
import { isPlainObject, keyPath } from "./_checks.ts";
import type { Config } from "./types.ts";

/** What a redacted secret is replaced with. */
export const REDACTED = "<redacted>";

/**
 * The redaction rule: a key is secret when its own name (not its table's) contains
 * `secret`, `password`, `token` or `auth`, case-insensitively, e.g. `registry_token`,
 * `auth`, `access_key_secret`. No key of today's config matches (`remote.auth` is a table
 * name, and its keys are flags and paths); the rule is there for future credential keys.
 */
export function isSecretKey(name: string): boolean {
  return /secret|password|token|auth/i.test(name);
}

/** Options of {@link configToToml}. */
export interface TomlOptions {
  /**
   * Replace the value of every secret key (see {@link isSecretKey}) that holds a non-empty
   * string, or strings in an array, with {@link REDACTED}. Default `true`.
   */
  redact?: boolean;
  /** Comment lines written at the top (without the leading `#`). */
  header?: readonly string[];
}

/** TOML basic string with the escapes TOML requires (quote, backslash, control chars). */
function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).toUpperCase().padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

function bareOrQuotedKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : quote(key);
}

function value(v: unknown, path: string, secret: boolean): string {
  if (typeof v === "string") return quote(secret && v !== "" ? REDACTED : v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "nan";
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    return String(v);
  }
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return `[${v.map((e, i) => value(e, `${path}[${i}]`, secret)).join(", ")}]`;
  if (isPlainObject(v)) {
    const parts = Object.entries(v).map(
      ([k, e]) => `${bareOrQuotedKey(k)} = ${value(e, keyPath(path, k), secret || isSecretKey(k))}`,
    );
    return parts.length === 0 ? "{}" : `{ ${parts.join(", ")} }`;
  }
  throw internal(`cannot write ${path} as TOML: unsupported value ${String(v)}`);
}

function writeTable(lines: string[], table: Record<string, unknown>, path: string, redact: boolean): void {
  const scalars = Object.entries(table).filter(([, v]) => !isPlainObject(v));
  const tables = Object.entries(table).filter(([, v]) => isPlainObject(v));
  // A header is needed for scalars and for an empty table (so it survives the round trip);
  // tables holding only sub-tables are implied by their children's headers.
  if (path !== "" && (scalars.length > 0 || tables.length === 0)) {
    if (lines.length > 0) lines.push("");
    lines.push(`[${path}]`);
  }
  for (const [k, v] of scalars) {
    lines.push(`${bareOrQuotedKey(k)} = ${value(v, keyPath(path, k), redact && isSecretKey(k))}`);
  }
  for (const [k, v] of tables) writeTable(lines, v as Record<string, unknown>, keyPath(path, k), redact);
}

/**
 * Serialises a configuration (normally the effective one from `parseConfig`) as TOML, keys
 * in schema order, top-level keys first, then one `[section]` / `[section.sub]` per table.
 * `Bun.TOML.parse` of the output, fed back to `parseConfig`, gives the same config (unless
 * secrets were redacted).
 *
 * @throws RafsnapError of kind Internal if the object holds a value TOML cannot express here
 *   (undefined, null, a function, a class instance).
 */
export function configToToml(config: Config | Readonly<Record<string, unknown>>, opts: TomlOptions = {}): string {
  const redact = opts.redact ?? true;
  const lines: string[] = (opts.header ?? []).map((l) => (l === "" ? "#" : `# ${l}`));
  if (lines.length > 0) lines.push("");
  const body: string[] = [];
  writeTable(body, config as Record<string, unknown>, "", redact);
  return `${[...lines, ...body].join("\n")}\n`;
}
