/**
 * Go `time.Duration` strings ("10s", "1m30s", "24h", "1.5h", "300ms").
 *
 * config.toml keeps durations as the strings the user wrote, exactly as nydus-snapshotter's
 * files do. These helpers check the syntax and turn a duration into numbers when a module
 * needs one (a timer, an interval).
 */

import { invalidArgument } from "../errdefs/index.ts";

/** Nanoseconds per unit, the units Go's `time.ParseDuration` accepts. */
const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  "\u00b5s": 1e3, // µs, MICRO SIGN
  "\u03bcs": 1e3, // μs, GREEK SMALL LETTER MU
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** One `<number><unit>` group. "ms" comes before "m" and "s" so the longer unit wins. */
const GROUP = /^(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/;

/** Go's Duration is an int64 of nanoseconds. */
const MAX_NS = 2 ** 63 - 1;

/**
 * Parses a Go duration string into nanoseconds, following `time.ParseDuration`: an optional
 * sign, then either the bare `0` or one or more `<decimal><unit>` groups with units
 * `ns`, `us` (or `µs`/`μs`), `ms`, `s`, `m`, `h`. No spaces and no empty string.
 *
 * Returns `undefined` when `text` is not valid Go syntax or does not fit an int64 of
 * nanoseconds. Never throws. Precision is that of a JS number (fine for config intervals).
 */
export function parseGoDuration(text: string): number | undefined {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  let total = 0;
  while (rest !== "") {
    const m = GROUP.exec(rest);
    if (!m) return undefined;
    const [whole, int = "", frac = "", unit = ""] = m;
    // Go: "time: invalid duration" when neither an integer nor a fraction digit is present.
    if (int === "" && frac === "") return undefined;
    const perUnit = UNIT_NS[unit];
    if (perUnit === undefined) return undefined;
    total += Number(`${int || "0"}.${frac || "0"}`) * perUnit;
    rest = rest.slice(whole.length);
  }
  if (total > MAX_NS) return undefined;
  return sign * total;
}

/** True when `text` is valid Go duration syntax (see {@link parseGoDuration}). */
export function isGoDuration(text: string): boolean {
  return parseGoDuration(text) !== undefined;
}

/**
 * Converts a validated config duration into milliseconds (fractions kept), for `setTimeout`
 * and friends.
 *
 * @throws RafsnapError of kind InvalidArgument when `text` is not a Go duration.
 */
export function durationMs(text: string): number {
  const ns = parseGoDuration(text);
  if (ns === undefined) {
    throw invalidArgument(`${JSON.stringify(text)} is not a Go duration (examples: "10s", "1m", "24h")`);
  }
  return ns / 1e6;
}

/**
 * Writes a whole number of nanoseconds as the shortest exact Go duration string with a single
 * unit: 86400000000000 → "24h", 90000000000 → "90s", 1500 → "1500ns". Used when a config file
 * gives a duration as a TOML integer (go-toml v1 reads an integer as nanoseconds).
 *
 * @throws RafsnapError of kind InvalidArgument when `ns` is not a safe integer.
 */
export function nanosToGoDuration(ns: number): string {
  if (!Number.isSafeInteger(ns)) throw invalidArgument(`duration ${ns}ns is not a whole number of nanoseconds`);
  if (ns === 0) return "0s";
  for (const [unit, size] of [
    ["h", 3600e9],
    ["m", 60e9],
    ["s", 1e9],
    ["ms", 1e6],
    ["us", 1e3],
  ] as const) {
    if (ns % size === 0) return `${ns / size}${unit}`;
  }
  return `${ns}ns`;
}
