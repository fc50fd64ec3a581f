/**
 * containerd's filter language, as used by `Snapshots.List` / `Walk`
 * (`pkg/filters` in containerd: `parser.go`, `scanner.go`, `quote.go`, `filter.go`).
 *
 * Grammar (one filter string):
 *
 * ```
 * selectors := selector ("," selector)*          -- AND
 * selector  := fieldpath [operator value]        -- no operator: "field is present"
 * fieldpath := field ("." field)*
 * field     := [A-Za-z0-9_]+ | "double-quoted"
 * operator  := "==" | "!=" | "~="
 * value     := bare | "double-quoted"            -- `~=` also takes /re/ and |re|
 * ```
 *
 * A list of filter strings is OR'ed (containerd `ParseAll`). There is no other OR: `|` is an
 * alternative quote for regexps, not an operator. Whitespace is skipped between tokens, except
 * right after a fieldpath or a value: `name==x ` and `labels.a ,b` are errors, as in containerd.
 * Quoted strings take Go escapes (`\n`, `\x41`, `\u00e9`, `\101`); escapes such as `\.` are
 * rejected inside quotes, so regexps that need them are written bare (`name~=a\.b`) or with the
 * backslash doubled (`name~="a\\.b"`).
 *
 * Regular expressions use Go's RE2 syntax and semantics, matched in linear time by re2js
 * ({@link compileGoRegexp}). Where containerd logs a regexp that does not compile and
 * matches nothing, {@link parseFilters} throws InvalidArgument instead.
 */
import { invalidArgument } from "../errdefs/index.ts";
import { compileGoRegexp, type GoRegexp } from "./regexp.ts";

/**
 * Looks up a field path on the object being filtered. `present` is false when the object has
 * no such field; `value` is then usually "" and is still compared by `!=` and `~=`
 * (containerd's semantics: `labels.x!=y` matches objects without label `x`).
 */
export type FieldAdaptor = (fieldpath: readonly string[]) => { value: string; present: boolean };

/** A parsed filter; {@link Filter.match} is pure and may be called any number of times. */
export interface Filter {
  /** True when the object seen through `adaptor` satisfies the filter. */
  match(adaptor: FieldAdaptor): boolean;
}

/** The fields of a snapshot `Info` that filters can see. */
export interface SnapshotFilterFields {
  readonly name: string;
  readonly parent: string;
  readonly kind: "view" | "active" | "committed";
  readonly labels: Readonly<Record<string, string>>;
}

type Selector =
  | { readonly op: "present"; readonly path: string[] }
  | { readonly op: "==" | "!="; readonly path: string[]; readonly value: string }
  | { readonly op: "~="; readonly path: string[]; readonly re: GoRegexp };

/**
 * Parses `filters` the way containerd's `filters.ParseAll` does: each string is a
 * comma-separated AND of selectors and the strings are OR'ed. An empty list, or any empty
 * string in the list, matches everything.
 *
 * @throws RafsnapError of kind InvalidArgument naming the offending filter string, the
 *   position (UTF-16 offset; containerd reports byte offsets) and the reason. The reasons use
 *   containerd's wording (`expected field or quoted`, `quoted literal not terminated`, …).
 *   A `~=` value that is not a valid RE2 regexp is reported the same way, with Go's reason.
 */
export function parseFilters(filters: readonly string[]): Filter {
  const alternatives: Selector[][] = [];
  let matchAll = filters.length === 0;
  for (const f of filters) {
    // Every string is still parsed (and may throw) even when one of them matches all.
    if (f === "") matchAll = true;
    else alternatives.push(new Parser(f).parse());
  }
  if (matchAll) return { match: () => true };
  return {
    match: (adaptor) => alternatives.some((all) => all.every((s) => matchSelector(s, adaptor))),
  };
}

function matchSelector(s: Selector, adaptor: FieldAdaptor): boolean {
  const { value, present } = adaptor(s.path);
  switch (s.op) {
    case "present":
      return present;
    case "==":
      return present && value === s.value;
    case "!=":
      return value !== s.value;
    case "~=":
      return s.re.test(value);
  }
}

const ABSENT = Object.freeze({ value: "", present: false });

/**
 * The adaptor containerd uses for snapshots (`adaptSnapshot` in
 * `core/snapshots/storage/bolt.go` and `core/metadata/adaptors.go`):
 * `kind` is "active" | "view" | "committed"; `name` and `parent` are always present (an empty
 * parent is present with value ""); `labels.<k>` looks up the label whose key is the rest of the
 * path joined with "." (so `labels.a.b` is label "a.b"); anything else is absent.
 */
export function snapshotInfoAdaptor(info: SnapshotFilterFields): FieldAdaptor {
  return (path) => {
    switch (path[0]) {
      case "kind":
        return info.kind === "active" || info.kind === "view" || info.kind === "committed" ? { value: info.kind, present: true } : ABSENT;
      case "name":
        return { value: info.name, present: true };
      case "parent":
        return { value: info.parent, present: true };
      case "labels": {
        const key = path.slice(1).join(".");
        const value = Object.hasOwn(info.labels, key) ? info.labels[key] : undefined;
        return value === undefined ? ABSENT : { value, present: true };
      }
      default:
        return ABSENT;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Scanner: mirrors containerd's scanner.go token by token, including its quirks.

const EOF = -1;
const ILLEGAL = -2;
const cp = (c: string) => c.codePointAt(0) ?? 0;
const COMMA = cp(",");
const DOT = cp(".");
const BACKSLASH = cp("\\");

type TokenKind = "eof" | "illegal" | "quoted" | "separator" | "operator" | "value" | "field" | "other";
interface Token {
  readonly kind: TokenKind;
  readonly pos: number;
  readonly text: string;
}

// Go's unicode.IsSpace.
const isSpace = (c: number) =>
  (c >= 9 && c <= 13) ||
  c === 0x20 ||
  c === 0x85 ||
  c === 0xa0 ||
  c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 ||
  c === 0x2029 ||
  c === 0x202f ||
  c === 0x205f ||
  c === 0x3000;
const isFieldRune = (c: number) => c === 0x5f || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isQuoteRune = (c: number) => c === cp("/") || c === cp("|") || c === cp('"');
const isOperatorRune = (c: number) => c === cp("=") || c === cp("!") || c === cp("~");
// Go: letter, digit, number, graphic or punct, minus ',' and spaces => categories L M N P S.
const isValueRune = (c: number) => c >= 0 && c !== COMMA && !isSpace(c) && /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(String.fromCodePoint(c));
const digitVal = (c: number) => {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return 16;
};

class Scanner {
  /** Start of the rune last returned by {@link next}. */
  pos = 0;
  /** End of the rune last returned by {@link next}. */
  ppos = 0;
  /** True after an operator: the next bare token is a value, not a field. */
  private value = false;
  /** First error seen (sticky, as in Go). */
  err = "";

  constructor(private readonly input: string) {}

  next(): number {
    if (this.pos >= this.input.length) return EOF;
    this.pos = this.ppos;
    const c = this.input.codePointAt(this.ppos);
    if (c === undefined) return EOF;
    this.ppos += c > 0xffff ? 2 : 1;
    // Go decodes U+FFFD (and invalid UTF-8) as utf8.RuneError and calls it a "rune error".
    if (c === 0xfffd || (c >= 0xd800 && c <= 0xdfff)) return this.fail("rune error");
    if (c === 0) return this.fail("unexpected null");
    return c;
  }

  peek(): number {
    const { pos, ppos } = this;
    const c = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return c;
  }

  scan(): Token {
    let c = this.next();
    let pos = this.pos;
    while (isSpace(c)) {
      c = this.next();
      pos = this.pos;
    }
    const tok = (kind: TokenKind): Token => ({ kind, pos, text: this.input.slice(pos, this.ppos) });
    if (c === EOF) return { kind: "eof", pos: this.pos, text: "" };
    if (c === ILLEGAL) return { kind: "illegal", pos: this.pos, text: "" };
    if (isQuoteRune(c)) return tok(this.scanQuoted(c) ? "quoted" : "illegal");
    if (c === COMMA || c === DOT) {
      this.value = false;
      return tok("separator");
    }
    if (isOperatorRune(c)) {
      while (isOperatorRune(this.peek())) this.next();
      this.value = true;
      return tok("operator");
    }
    if (this.value) {
      while (isValueRune(this.peek())) this.next();
      this.value = false;
      return tok("value");
    }
    if (isFieldRune(c)) {
      while (isFieldRune(this.peek())) this.next();
      return tok("field");
    }
    return { kind: "other", pos: this.pos, text: String.fromCodePoint(c) };
  }

  private fail(msg: string): number {
    if (this.err === "") this.err = msg;
    return ILLEGAL;
  }

  private scanQuoted(quote: number): boolean {
    let legal = true;
    let c = this.next();
    while (c !== quote) {
      if (c === 0x0a || c < 0) {
        this.fail("quoted literal not terminated");
        return false;
      }
      if (c === BACKSLASH) {
        const r = this.scanEscape(quote);
        c = r.c;
        legal &&= r.legal;
      } else {
        c = this.next();
      }
    }
    return legal;
  }

  private scanEscape(quote: number): { c: number; legal: boolean } {
    const c = this.next();
    if (c === quote || "abfnrtv\\".includes(String.fromCodePoint(Math.max(c, 0)))) {
      return { c: this.next(), legal: true };
    }
    if (c >= 0x30 && c <= 0x37) return this.scanDigits(c, 8, 3);
    const width = c === cp("x") ? 2 : c === cp("u") ? 4 : c === cp("U") ? 8 : 0;
    if (width > 0) return this.scanDigits(this.next(), 16, width);
    this.fail("illegal escape sequence");
    return { c, legal: false };
  }

  private scanDigits(first: number, base: number, n: number): { c: number; legal: boolean } {
    let c = first;
    for (; n > 0 && digitVal(c) < base; n--) c = this.next();
    if (n > 0) this.fail("illegal numeric escape sequence");
    return { c, legal: n === 0 };
  }
}

// ---------------------------------------------------------------------------------------------
// Parser: mirrors containerd's parser.go.

class Parser {
  private readonly sc: Scanner;

  constructor(private readonly input: string) {
    this.sc = new Scanner(input);
  }

  parse(): Selector[] {
    const all = [this.selector()];
    for (;;) {
      const c = this.sc.peek();
      if (c === EOF) return all;
      if (c !== COMMA) {
        this.fail(this.sc.ppos, `unexpected input: ${c < 0 ? "illegal character" : JSON.stringify(String.fromCodePoint(c))}`);
      }
      const t = this.sc.scan();
      if (t.kind !== "separator") this.fail(t.pos, "expected a separator");
      all.push(this.selector());
    }
  }

  private selector(): Selector {
    const path = this.fieldpath();
    const next = this.sc.peek();
    if (next === COMMA || next === EOF) return { op: "present", path };
    const op = this.operator();
    const t = this.sc.scan();
    let value: string;
    if (t.kind === "value" || t.kind === "field") value = t.text;
    else if (t.kind === "quoted") value = this.unquote(t, op === "~=");
    else if (t.kind === "illegal") this.fail(t.pos, this.sc.err);
    else this.fail(t.pos, "expected value or quoted");
    if (op !== "~=") return { op, path, value };
    try {
      return { op, path, re: compileGoRegexp(value) };
    } catch (err) {
      this.fail(t.pos, `invalid regular expression ${JSON.stringify(value)}: ${(err as Error).message}`);
    }
  }

  private fieldpath(): string[] {
    const path = [this.field()];
    while (this.sc.peek() === DOT) {
      const t = this.sc.scan();
      if (t.kind !== "separator") this.fail(t.pos, "expected a field separator (`.`)");
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    const t = this.sc.scan();
    if (t.kind === "field") return t.text;
    if (t.kind === "quoted") return this.unquote(t, false);
    if (t.kind === "illegal") this.fail(t.pos, this.sc.err);
    this.fail(t.pos, "expected field or quoted");
  }

  private operator(): "==" | "!=" | "~=" {
    const t = this.sc.scan();
    if (t.kind === "operator") {
      if (t.text === "==" || t.text === "!=" || t.text === "~=") return t.text;
      this.fail(t.pos, `unsupported operator ${JSON.stringify(t.text)}`);
    }
    if (t.kind === "illegal") this.fail(t.pos, this.sc.err);
    this.fail(t.pos, 'expected an operator ("=="|"!="|"~=")');
  }

  private unquote(t: Token, allowAltQuotes: boolean): string {
    if (!allowAltQuotes && !t.text.startsWith('"')) this.fail(t.pos, "invalid quote encountered");
    const s = unquoteGo(t.text);
    if (s === undefined) this.fail(t.pos, "unquoting failed: quote syntax error");
    return s;
  }

  private fail(pos: number, reason: string): never {
    const where = pos >= this.input.length ? "end of input" : `position ${pos}`;
    throw invalidArgument(`invalid filter ${JSON.stringify(this.input)} at ${where}: ${reason}`);
  }
}

/** Go's strconv.Unquote, extended (like containerd's quote.go) to `/` and `|` quotes. */
function unquoteGo(quoted: string): string | undefined {
  const quote = quoted[0] ?? "";
  const body = quoted.slice(1, -1);
  const bytes: number[] = [];
  for (let i = 0; i < body.length; ) {
    const c = body.codePointAt(i) ?? 0;
    if (c !== BACKSLASH) {
      pushUtf8(bytes, c);
      i += c > 0xffff ? 2 : 1;
      continue;
    }
    const e = body[i + 1] ?? "";
    i += 2;
    const simple = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92 }[e];
    if (simple !== undefined) {
      bytes.push(simple);
    } else if (e === "x" || e === "u" || e === "U") {
      const n = e === "x" ? 2 : e === "u" ? 4 : 8;
      const hex = body.slice(i, i + n);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) return undefined;
      const v = parseInt(hex, 16);
      i += n;
      if (e === "x")
        bytes.push(v); // a raw byte, possibly not UTF-8
      else if (v > 0x10ffff) return undefined;
      else pushUtf8(bytes, v);
    } else if (e >= "0" && e <= "7") {
      const oct = body.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 255) return undefined;
      bytes.push(parseInt(oct, 8));
      i += 2;
    } else if (e === quote && (e === '"' || e === "/" || e === "|")) {
      bytes.push(cp(e));
    } else {
      return undefined;
    }
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

function pushUtf8(out: number[], c: number): void {
  if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // as Go's utf8.EncodeRune
  if (c < 0x80) out.push(c);
  else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
  else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
}
