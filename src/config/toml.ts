/**
 * Writes a {@link Config} back out as TOML, for `rafsnap config dump` and for logging the
 * effective configuration: redaction of secret keys here, the TOML itself by smol-toml.
 */

import { stringify } from "smol-toml";
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

/**
 * A copy of `v` with secret values redacted (when `redact`), checked for what TOML can hold: strings,
 * numbers, booleans, arrays and plain tables. Internal naming `path` for anything else
 * (undefined, null, a function, a class instance) — the writer would drop it silently.
 */
function prepared(v: unknown, path: string, redact: boolean, secret = false): unknown {
  if (typeof v === "string") return secret && v !== "" ? REDACTED : v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return v;
  if (Array.isArray(v)) return v.map((e, i) => prepared(e, `${path}[${i}]`, redact, secret));
  // A key is secret by its own name, not its table's (`[remote.auth]` is a table of flags).
  if (isPlainObject(v))
    return Object.fromEntries(
      Object.entries(v).map(([k, e]) => [k, prepared(e, keyPath(path, k), redact, secret || (redact && isSecretKey(k) && !isPlainObject(e)))]),
    );
  throw internal(`cannot write ${path} as TOML: unsupported value ${String(v)}`);
}

/**
 * Serialises a configuration (normally the effective one from `parseConfig`) as TOML with
 * smol-toml, keys in schema order, top-level keys first, then one `[section]` /
 * `[section.sub]` per table. `Bun.TOML.parse` of the output, fed back to `parseConfig`, gives
 * the same config (unless secrets were redacted).
 *
 * @throws RafsnapError of kind Internal if the object holds a value TOML cannot express here
 *   (undefined, null, a function, a class instance).
 */
export function configToToml(config: Config | Readonly<Record<string, unknown>>, opts: TomlOptions = {}): string {
  const body = stringify(prepared(config, "", opts.redact ?? true) as Record<string, unknown>);
  const header = (opts.header ?? []).map((l) => (l === "" ? "#" : `# ${l}`));
  return `${header.length > 0 ? `${header.join("\n")}\n\n` : ""}${body.replace(/\n*$/, "")}\n`;
}
