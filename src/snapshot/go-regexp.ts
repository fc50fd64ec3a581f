/**
 * Go (RE2) regular expressions run as JavaScript RegExps (flag `v`), for the `~=` operator of containerd
 * filters (see `filters.ts`). Go's syntax is checked here the way `regexp/syntax` checks it
 * (escapes, classes, flags, repeat counts <= 1000) and rewritten to a `v`-mode RegExp:
 *
 * - Only whether a match exists matters, so all groups become non-capturing (named groups are
 *   still validated) and the `U` (ungreedy) flag is accepted and ignored.
 * - `.`, `^`, `$`, `\A`, `\z`, `\s` and POSIX classes are rewritten to their Go meaning
 *   (Go's `.` excludes only `\n`; JS's also excludes `\r`, U+2028 and U+2029).
 * - The `m` and `s` flags are applied by that rewriting; `i` by JS modifier groups
 *   `(?i:…)` / `(?-i:…)`, closed and reopened around `|` so that Go's flag scoping holds.
 *
 * Limits: RE2 guarantees linear-time matching and JavaScript backtracks, so a hostile pattern
 * can be slow. A few unreasonable inputs that Go accepts are rejected (a flag group directly
 * followed by a repetition, e.g. `a(?i)*`). Unicode property names follow the JS engine's
 * tables (`\p{Greek}` becomes `\p{Script=Greek}`).
 */

const cp = (c: string) => c.codePointAt(0) ?? 0;
const BACKSLASH = cp("\\");

type Ranges = readonly (readonly [number, number])[];
const PERL: Record<string, Ranges> = {
  d: [[0x30, 0x39]],
  s: [[9, 10], [12, 13], [32, 32]],
  w: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
};
const POSIX: Record<string, Ranges> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0, 0x7f]],
  blank: [[9, 9], [32, 32]],
  cntrl: [[0, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[9, 13], [32, 32]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};
const GENERAL_CATEGORIES = new Set(
  "C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs".split(" "),
);

const esc = (c: number) => `\\u{${c.toString(16)}}`;

/**
 * Adds the case variants of an ASCII set: the other ASCII case, and U+212A (Kelvin) and
 * U+017F (long s), the only non-ASCII characters whose simple case folding is ASCII.
 */
function caseClosure(r: Ranges): Ranges {
  const all: [number, number][] = r.map(([a, b]) => [a, b]);
  const has = (c: number) => r.some(([a, b]) => a <= c && c <= b);
  for (const [a, b] of r) {
    for (const [lo, hi, d] of [[0x41, 0x5a, 32], [0x61, 0x7a, -32]] as const) {
      if (Math.max(a, lo) <= Math.min(b, hi)) all.push([Math.max(a, lo) + d, Math.min(b, hi) + d]);
    }
  }
  if (has(0x4b) || has(0x6b)) all.push([0x212a, 0x212a]);
  if (has(0x53) || has(0x73)) all.push([0x17f, 0x17f]);
  all.sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of all) {
    const last = merged[merged.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  return merged;
}

/**
 * JS class body for an ASCII set (sorted, disjoint) or its complement. Go folds a set before
 * negating it under `(?i)`, so the complement is taken of the case closure: a set closed
 * under case then matches the same characters in JS's case-insensitive mode.
 */
function rangesSrc(r: Ranges, negate: boolean, foldCase = false): string {
  if (negate && foldCase) r = caseClosure(r);
  let out = "";
  let lo = 0;
  for (const [a, b] of r) {
    if (!negate) out += a === b ? esc(a) : `${esc(a)}-${esc(b)}`;
    else if (a > lo) out += `${esc(lo)}-${esc(a - 1)}`;
    lo = b + 1;
  }
  return negate && lo <= 0x10ffff ? `${out}${esc(lo)}-${esc(0x10ffff)}` : out;
}

/**
 * Compiles the Go (RE2) regular expression `pattern` into a JavaScript RegExp (flag `v`)
 * that matches the same strings; use it with `test` only (captures are not kept).
 *
 * @throws Error whose message gives the reason, when `pattern` is not valid Go syntax
 *   (`missing closing )`, `invalid escape sequence: \\C`, `invalid repeat count: {1001}`, …)
 *   or cannot be expressed in JavaScript (for lookarounds and backreferences, which Go
 *   rejects as well). Callers wrap it in their own error kind.
 */
export function translateGoRegexp(pattern: string): RegExp {
  const p = Array.from(pattern, cp);
  let i = 0;
  let out = "";
  type Flags = { readonly i: boolean; readonly m: boolean; readonly s: boolean };
  let flags: Flags = { i: false, m: false, s: false };
  // JS-side case state: `baseI` is in force at the group's start; `wrapI` is the modifier
  // group opened inside it by a later `(?i)`/`(?-i)`, or null.
  const stack: { restore: Flags; baseI: boolean; wrapI: boolean | null }[] = [
    { restore: flags, baseI: false, wrapI: null },
  ];
  const top = () => stack[stack.length - 1]!;
  const at = (k: number) => (p[i + k] === undefined ? "" : String.fromCodePoint(p[i + k]!));
  // Code points [from, to) as a string (no spread: patterns can be long).
  const text = (from: number, to: number) => p.slice(from, to).map((c) => String.fromCodePoint(c)).join("");
  const open = (ci: boolean) => (ci ? "(?i:" : "(?-i:");
  // Go's `{n}`, `{n,}`, `{n,m}` (no leading zeros); anything else starting with `{` is literal.
  const repeatAt = () => /^\{(0|[1-9]\d{0,7})(,(0|[1-9]\d{0,7})?)?\}/.exec(text(i, i + 20));

  // `\pX`, `\p{Name}`, `\P{^Name}`… (i at the backslash).
  const unicodeClass = (): string => {
    let negate = at(1) === "P";
    let name = at(2);
    i += 3;
    if (name === "{") {
      const end = p.indexOf(cp("}"), i);
      if (end < 0) throw new Error("invalid character class range");
      name = text(i, end);
      i = end + 1;
    }
    if (name.startsWith("^")) [name, negate] = [name.slice(1), !negate];
    const prop = `{${name === "Any" || GENERAL_CATEGORIES.has(name) ? name : `Script=${name}`}}`;
    return `\\${negate ? "P" : "p"}${prop}`;
  };

  // Go's parseEscape: a single escaped character (i at the backslash).
  const escapedChar = (): number => {
    const c = at(1);
    i += 2;
    if (c === "") throw new Error("trailing backslash at end of expression");
    const code = cp(c);
    if (code < 0x80 && !/[0-9A-Za-z]/.test(c)) return code;
    if (c >= "0" && c <= "7") {
      if (c !== "0" && !/[0-7]/.test(at(0))) throw new Error(`invalid escape sequence: \\${c}`);
      let v = code - 0x30;
      for (let k = 0; k < 2 && /[0-7]/.test(at(0)); k++, i++) v = v * 8 + (p[i]! - 0x30);
      return v;
    }
    if (c === "x") {
      const m = at(0) === "{"
        ? /^\{([0-9A-Fa-f]+)\}/.exec(text(i, i + 12))
        : /^()([0-9A-Fa-f]{2})/.exec(at(0) + at(1));
      const v = m ? parseInt(m[1] || m[2]!, 16) : NaN;
      if (!(v <= 0x10ffff)) throw new Error("invalid escape sequence: \\x");
      i += m![0].length;
      return v;
    }
    const simple = { a: 7, f: 12, n: 10, r: 13, t: 9, v: 11 }[c];
    if (simple !== undefined) return simple;
    throw new Error(`invalid escape sequence: \\${c}`);
  };

  const charClass = (): string => {
    i++;
    const negate = at(0) === "^";
    if (negate) i++;
    let body = "";
    for (let first = true; first || at(0) !== "]"; first = false) {
      if (at(0) === "") throw new Error("missing closing ]");
      if (at(0) === "[" && at(1) === ":") {
        // As Go: the name runs to the first ":]"; without one, "[" is a literal.
        let end = i + 2;
        while (end + 1 < p.length && !(p[end] === cp(":") && p[end + 1] === cp("]"))) end++;
        if (end + 1 < p.length) {
          const name = text(i + 2, end);
          const r = POSIX[name.replace(/^\^/, "")];
          if (!r) throw new Error(`invalid character class range: [:${name}:]`);
          body += rangesSrc(r, name.startsWith("^"), flags.i);
          i = end + 2;
          continue;
        }
      }
      if (at(0) === "\\" && (at(1) === "p" || at(1) === "P")) {
        body += unicodeClass();
        continue;
      }
      if (at(0) === "\\" && PERL[at(1).toLowerCase()] && /[dswDSW]/.test(at(1))) {
        body += rangesSrc(PERL[at(1).toLowerCase()]!, at(1) !== at(1).toLowerCase(), flags.i);
        i += 2;
        continue;
      }
      const classChar = () => (at(0) === "\\" ? escapedChar() : p[i++]!);
      const lo = classChar();
      let hi = lo;
      if (at(0) === "-" && at(1) !== "]" && at(1) !== "") {
        i++;
        hi = classChar();
        if (hi < lo) throw new Error("invalid character class range");
      }
      body += rangesSrc([[lo, hi]], false);
    }
    i++;
    return `[${negate ? "^" : ""}${body}]`;
  };

  while (i < p.length) {
    const c = at(0);
    if (c === "(") {
      if (at(1) !== "?") {
        stack.push({ restore: flags, baseI: flags.i, wrapI: null });
        out += "(?:";
        i++;
        continue;
      }
      const named = at(2) === "<" ? 3 : at(2) === "P" && at(3) === "<" ? 4 : 0;
      if (named) {
        const end = p.indexOf(cp(">"), i + named);
        if (end < 0 || !/^[A-Za-z0-9_]+$/.test(text(i + named, end))) throw new Error("invalid named capture");
        stack.push({ restore: flags, baseI: flags.i, wrapI: null });
        out += "(?:";
        i = end + 1;
        continue;
      }
      // Flags: (?flags) or (?flags:re), flags from [imsU] with at most one '-'.
      const m = /^\(\?([imsU]*)(?:-([imsU]+))?([:)])/.exec(text(i, i + 64));
      if (!m) throw new Error("invalid or unsupported Perl syntax");
      const [on, off] = [m[1]!, m[2] ?? ""];
      const set = (f: "i" | "m" | "s") => (off.includes(f) ? false : on.includes(f) ? true : flags[f]);
      const next: Flags = { i: set("i"), m: set("m"), s: set("s") };
      i += m[0].length;
      if (m[3] === ":") {
        out += next.i === flags.i ? "(?:" : open(next.i);
        stack.push({ restore: flags, baseI: next.i, wrapI: null });
      } else {
        const f = top();
        // In Go a repetition here applies to the atom before the flag group; not worth emulating.
        if (/^[*+?]$/.test(at(0)) || (at(0) === "{" && repeatAt())) {
          throw new Error("a repetition operator directly after a flag group is not supported");
        }
        const want = next.i === f.baseI ? null : next.i;
        if (want !== f.wrapI) {
          if (f.wrapI !== null) out += ")";
          if (want !== null) out += open(want);
          f.wrapI = want;
        }
      }
      flags = next;
    } else if (c === ")") {
      if (stack.length === 1) throw new Error("unexpected )");
      const f = stack.pop()!;
      out += f.wrapI === null ? ")" : "))";
      flags = f.restore;
      i++;
    } else if (c === "|") {
      const w = top().wrapI;
      out += w === null ? "|" : `)|${open(w)}`;
      i++;
    } else if (c === "[") {
      out += charClass();
    } else if (c === ".") {
      out += flags.s ? `[${esc(0)}-${esc(0x10ffff)}]` : "[^\\n]";
      i++;
    } else if (c === "^" || c === "$") {
      // Wrapped so that Go's legal `^*` stays legal in JS.
      if (c === "^") out += flags.m ? "(?:(?<![^\\n]))" : "(?:^)";
      else out += flags.m ? "(?:(?![^\\n]))" : "(?:$)";
      i++;
    } else if (c === "{") {
      const m = repeatAt();
      if (!m) {
        out += esc(cp(c)); // not a repeat: a literal brace, as in Go
        i++;
        continue;
      }
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === undefined ? -1 : Number(m[3]);
      if (min > 1000 || max > 1000 || (max >= 0 && max < min)) throw new Error(`invalid repeat count: ${m[0]}`);
      out += m[0];
      i += m[0].length;
    } else if (c === "\\") {
      const e = at(1);
      if (e === "A" || e === "z") out += e === "A" ? "(?:^)" : "(?:$)";
      // Go's word boundary is ASCII-only; JS's widens under `i` (U+017F, U+212A).
      else if (e === "b" || e === "B") out += `(?${flags.i ? "-i" : ""}:\\${e})`;
      else if (e === "p" || e === "P") {
        out += unicodeClass();
        continue;
      } else if (/[dswDSW]/.test(e)) out += `[${rangesSrc(PERL[e.toLowerCase()]!, e !== e.toLowerCase(), flags.i)}]`;
      else if (e === "Q") {
        const rest = p.slice(i + 2);
        let end = rest.findIndex((x, k) => x === BACKSLASH && rest[k + 1] === cp("E"));
        if (end < 0) end = rest.length;
        out += rest.slice(0, end).map(esc).join("");
        i += 2 + Math.min(end + 2, rest.length);
        continue;
      } else {
        out += esc(escapedChar());
        continue;
      }
      i += 2;
    } else {
      out += c === "]" || c === "}" ? esc(cp(c)) : c;
      i++;
    }
  }
  if (stack.length > 1) throw new Error("missing closing )");
  if (top().wrapI !== null) out += ")";
  try {
    // `v`, not `u`: under `i`, `v` folds a property before complementing it (`\P{Lu}`), as Go does.
    return new RegExp(out, "v");
  } catch (err) {
    // e.g. "nothing to repeat" for Go's "missing argument to repetition operator".
    throw new Error((err as Error).message.replace(/^Invalid regular expression: /, ""));
  }
}
