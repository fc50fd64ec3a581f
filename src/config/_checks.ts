/**
 * Building blocks of the hand-written config parser in `schema.ts`: one small check per kind
 * of value, the helpers that print keys and values in error messages, and the walker that
 * applies a table of checks to a TOML table.
 * Internal to `src/config` (not re-exported from `index.ts`).
 */

import { statSync } from "node:fs";
import { nanosToGoDuration, parseGoDuration } from "./duration.ts";

/** Outcome of checking one raw TOML value. `reason` says what is allowed, without the key. */
export type CheckResult<V> = { ok: true; value: V } | { ok: false; reason: string };

/** Checks (and possibly normalises) one raw value taken from the TOML document. */
export type Check<V> = (raw: unknown) => CheckResult<V>;

const ok = <V>(value: V): CheckResult<V> => ({ ok: true, value });
const bad = <V>(reason: string): CheckResult<V> => ({ ok: false, reason });

/** A table as `Bun.TOML.parse` returns it (a plain object; datetimes are not plain). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** "a string", "an integer", "a table"…: how a TOML value's type is named in messages. */
export function typeName(v: unknown): string {
  if (typeof v === "string") return "a string";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a float";
  if (typeof v === "bigint") return "an integer";
  if (Array.isArray(v)) return "an array";
  if (isPlainObject(v)) return "a table";
  if (v === null || v === undefined) return "nothing";
  return "a datetime";
}

/** A value as it appears in messages: strings quoted, long values shortened. */
export function show(v: unknown): string {
  const cut = (s: string) => (s.length > 120 ? `${s.slice(0, 117)}...` : s);
  if (typeof v === "string") return JSON.stringify(cut(v));
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (isPlainObject(v)) return "(a table)";
  if (Array.isArray(v)) {
    try {
      return cut(JSON.stringify(v));
    } catch {
      return "(an array)";
    }
  }
  return cut(String(v));
}

/** Joins a key onto a dotted path, quoting keys that are not TOML bare keys. */
export function keyPath(parent: string, key: string): string {
  const k = /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
  return parent === "" ? k : `${parent}.${k}`;
}

const wrongType = <V>(expected: string, raw: unknown): CheckResult<V> => bad(`wrong type: expected ${expected}, got ${typeName(raw)}`);

/** `true` or `false`. Strings such as "true" are rejected (go-toml rejects them too). */
export const bool = (): Check<boolean> => (raw) => (typeof raw === "boolean" ? ok(raw) : wrongType("a boolean (true or false)", raw));

/** Any string, including the empty one. */
export const str = (): Check<string> => (raw) => (typeof raw === "string" ? ok(raw) : wrongType("a string", raw));

/** An integer in `[min, max]`. */
export function int(min: number, max: number = Number.MAX_SAFE_INTEGER): Check<number> {
  const range = max === Number.MAX_SAFE_INTEGER ? (min === 0 ? "a non-negative integer" : `an integer of at least ${min}`) : `an integer from ${min} to ${max}`;
  return (raw) => {
    if (typeof raw !== "number" || !Number.isInteger(raw)) return wrongType(range, raw);
    if (raw < min || raw > max) return bad(`out of range: must be ${range}`);
    return ok(raw);
  };
}

/** Exactly `value` (used for `version`). */
export function literal<V extends number>(value: V, what: string): Check<V> {
  return (raw) => {
    if (typeof raw !== "number" || !Number.isInteger(raw)) return wrongType(`the integer ${value}`, raw);
    return raw === value ? ok(value) : bad(`${what}: must be ${value}`);
  };
}

/**
 * One of `allowed`. `aliases` maps accepted spellings to the stored value (e.g. Go's
 * `multiple` → `dedicated`); aliases are listed as allowed in the message too.
 */
export function oneOf<V extends string>(allowed: readonly V[], aliases: Readonly<Record<string, V>> = {}): Check<V> {
  const names = [...allowed, ...Object.keys(aliases)].map((s) => JSON.stringify(s)).join(", ");
  return (raw) => {
    if (typeof raw !== "string") return wrongType(`a string, one of ${names}`, raw);
    if (Object.hasOwn(aliases, raw)) return ok(aliases[raw] as V);
    if ((allowed as readonly string[]).includes(raw)) return ok(raw as V);
    return bad(`must be one of ${names}`);
  };
}

/**
 * A non-negative Go duration, kept as the string written ("10s", "1m30s", "24h").
 * A TOML integer is accepted as nanoseconds, as go-toml v1 does for `time.Duration`, and is
 * rewritten as a duration string (`90000000000` → `"90s"`).
 */
export function duration(): Check<string> {
  const expected = 'a Go duration string such as "10s", "1m" or "24h"';
  return (raw) => {
    if (typeof raw === "number" && Number.isSafeInteger(raw)) {
      return raw >= 0 ? ok(nanosToGoDuration(raw)) : bad(`must not be negative; expected ${expected}`);
    }
    if (typeof raw !== "string") return wrongType(expected, raw);
    const ns = parseGoDuration(raw);
    if (ns === undefined) return bad(`not a valid duration; expected ${expected} (units ns, us, ms, s, m, h)`);
    if (ns < 0) return bad(`must not be negative; expected ${expected}`);
    return ok(raw);
  };
}

/** Byte-count suffixes nydus-snapshotter's `MemoryConfigToBytes` knows, plus `B` and `%`. */
const MEMORY_LIMIT = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|(?:\d*\.?\d+)(?:B|KiB|MiB|GiB|TiB|PiB|Ki|Mi|Gi|Ti|Pi|%))$/;

/**
 * `cgroup.memory_limit`: empty (no limit), a byte count (`209715200`), a size with a binary
 * unit (`200MiB`, `200Mi`, `1GiB`, `512B`) or a share of host memory (`10%`).
 * Stricter than Go, which silently turns an unknown unit such as `200MB` into 0 bytes.
 */
export function memoryLimit(): Check<string> {
  const expected = '"" (25% of the node\'s memory), "0" (no limit), a byte count, a size such as "200MiB" or "200Mi", or a percentage such as "10%"';
  return (raw) => {
    if (typeof raw !== "string") return wrongType(`a string: ${expected}`, raw);
    return raw === "" || MEMORY_LIMIT.test(raw) ? ok(raw) : bad(`must be ${expected}`);
  };
}

/** Size of `s` in bytes as UTF-8, the way Go's `len(string)` counts. */
export const byteLength = (s: string): number => Buffer.byteLength(s, "utf8");

/**
 * A non-empty absolute path of at most `maxBytes` bytes. `why` explains the limit in the
 * message (for unix sockets: `sun_path` is 108 bytes including the NUL).
 */
export function absolutePath(maxBytes: number, why: string): Check<string> {
  return (raw) => {
    if (typeof raw !== "string") return wrongType("an absolute path (a string)", raw);
    if (raw === "") return bad("must not be empty; expected an absolute path");
    if (!raw.startsWith("/")) return bad("must be an absolute path (starting with /)");
    if (raw.includes("\0")) return bad("must not contain a NUL byte");
    const n = byteLength(raw);
    if (n > maxBytes) return bad(`too long: ${n} bytes, at most ${maxBytes} bytes allowed (${why})`);
    return ok(raw);
  };
}

/** State of one parseConfig run. */
export interface Ctx {
  problems: string[];
  warnings: string[];
  /** Key paths present in the document with a valid value. */
  given: Set<string>;
  overrides: Readonly<Record<string, string>>;
}

/** A key path as shown in messages, with the flag that set it. */
export const label = (ctx: Ctx, path: string) => (ctx.overrides[path] ? `${path} (from ${ctx.overrides[path]})` : path);

/** Records "<key> = <value>: <reason>". */
export function problem(ctx: Ctx, path: string, value: unknown, reason: string): void {
  ctx.problems.push(`${label(ctx, path)} = ${show(value)}: ${reason}`);
}

/** A table of checks, untyped (the typed form is `Spec<Config>` in schema.ts). */
export type AnySpec = { readonly [k: string]: AnySpec | Check<unknown> };

/** Reads one table: known keys are checked (or defaulted), unknown keys become warnings. */
export function readTable(spec: AnySpec, defaults: Readonly<Record<string, unknown>>, raw: unknown, path: string, ctx: Ctx): Record<string, unknown> {
  let table: Record<string, unknown> = {};
  if (isPlainObject(raw)) table = raw;
  else if (raw !== undefined) problem(ctx, path, raw, "wrong type: expected a table");
  for (const key of Object.keys(table)) {
    if (!Object.hasOwn(spec, key)) ctx.warnings.push(`unknown key ${keyPath(path, key)} (ignored)`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, check] of Object.entries(spec)) {
    const p = keyPath(path, key);
    const value = Object.hasOwn(table, key) ? table[key] : undefined;
    if (typeof check !== "function") {
      out[key] = readTable(check, defaults[key] as Record<string, unknown>, value, p, ctx);
      continue;
    }
    out[key] = defaults[key];
    if (value === undefined) continue;
    const r = check(value);
    if (r.ok) {
      out[key] = r.value;
      ctx.given.add(p);
    } else problem(ctx, p, value, r.reason);
  }
  return out;
}

/** True when `path` is an existing directory. */
export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** True when `path` exists (any type), like Go's `os.Stat` check. */
export function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
