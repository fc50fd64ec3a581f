/**
 * A line-level view of a TOML document: where each table header and each key/value pair
 * starts and ends, and the key path it names. `rafsnap setup containerd` edits containerd's
 * config.toml as text (so comments, order and formatting survive) and needs exactly this:
 * which lines belong to which table, and where a value sits on its line.
 *
 * It is not a TOML parser: it assumes the text already parsed with `Bun.TOML.parse` and only
 * follows strings, brackets and comments far enough to never mistake a line inside a
 * multi-line string or array for a header or a key.
 */
import { failedPrecondition } from "../errdefs/index.ts";

/** One statement of the document. Offsets are UTF-16 indexes into the scanned text. */
export interface TomlEntry {
  /** `[table]`, `[[array-table]]` or `key = value`. */
  kind: "table" | "array-table" | "keyval";
  /** Header path (tables), or the key path relative to {@link TomlEntry.section} (keyval). */
  path: string[];
  /** Path of the table the entry belongs to (`[]` for the root); for headers, their own path. */
  section: string[];
  /** Offset where the entry's line starts (the indentation is `text.slice(lineStart, start)`). */
  lineStart: number;
  /** Offset of the entry's first character. */
  start: number;
  /** Offset just past the entry's last line, including its newline (or the text's end). */
  lineEnd: number;
  /** Offset of the value's first character (keyval only). */
  valueStart?: number;
  /** Offset just past the value's last character (keyval only). */
  valueEnd?: number;
  /** 1-based line number of the entry's first line. */
  line: number;
}

const BARE_KEY = /[A-Za-z0-9_-]/;

/**
 * Scans `text` into its statements, in document order.
 *
 * @throws RafsnapError FailedPrecondition when the text does not have the shape of TOML (an
 *   unterminated string or header, a key without `=`); callers parse with `Bun.TOML.parse`
 *   first, so this only happens on TOML this scanner does not understand.
 */
export function scanToml(text: string): TomlEntry[] {
  const s = new Scanner(text);
  const out: TomlEntry[] = [];
  let section: string[] = [];
  for (;;) {
    s.skipInline();
    if (s.eof()) break;
    const c = s.peek();
    if (c === "\n" || c === "\r") {
      s.i++;
      continue;
    }
    if (c === "#") {
      s.skipComment();
      continue;
    }
    const start = s.i;
    const lineStart = text.lastIndexOf("\n", start - 1) + 1;
    const line = s.lineOf(start);
    if (c === "[") {
      const array = text[start + 1] === "[";
      s.i += array ? 2 : 1;
      const path = s.keyPath();
      s.expect(array ? "]]" : "]", line);
      s.endOfLine(line);
      section = path;
      out.push({ kind: array ? "array-table" : "table", path, section: path, lineStart, start, lineEnd: s.i, line });
      continue;
    }
    const path = s.keyPath();
    s.expect("=", line);
    s.skipInline();
    const valueStart = s.i;
    s.value(line);
    const valueEnd = s.i;
    s.endOfLine(line);
    out.push({ kind: "keyval", path, section, lineStart, start, lineEnd: s.i, valueStart, valueEnd, line });
  }
  return out;
}

/** Cursor over the text with the few lexical rules the scan needs. */
class Scanner {
  i = 0;
  constructor(readonly text: string) {}

  eof(): boolean {
    return this.i >= this.text.length;
  }
  peek(): string {
    return this.text[this.i] ?? "";
  }
  lineOf(offset: number): number {
    let n = 1;
    for (let k = this.text.indexOf("\n"); k !== -1 && k < offset; k = this.text.indexOf("\n", k + 1)) n++;
    return n;
  }
  fail(what: string, line: number): never {
    throw failedPrecondition(`cannot follow the TOML structure at line ${line}: ${what}`);
  }
  /** Skips spaces and tabs. */
  skipInline(): void {
    while (this.peek() === " " || this.peek() === "\t") this.i++;
  }
  /** Skips a `#` comment up to (not including) the newline. */
  skipComment(): void {
    while (!this.eof() && this.peek() !== "\n") this.i++;
  }
  expect(tok: string, line: number): void {
    this.skipInline();
    if (!this.text.startsWith(tok, this.i)) this.fail(`expected '${tok}'`, line);
    this.i += tok.length;
  }
  /** After a statement: optional spaces and comment, then a newline (consumed) or the end. */
  endOfLine(line: number): void {
    this.skipInline();
    if (this.peek() === "#") this.skipComment();
    if (this.peek() === "\r") this.i++;
    if (this.eof()) return;
    if (this.peek() !== "\n") this.fail("expected the end of the line", line);
    this.i++;
  }
  /** A dotted key: bare, "basic" or 'literal' parts. */
  keyPath(): string[] {
    const parts: string[] = [];
    const line = this.lineOf(this.i);
    for (;;) {
      this.skipInline();
      const c = this.peek();
      if (c === '"') parts.push(decodeBasic(this.text.slice(this.i + 1, this.basicString() - 1)));
      else if (c === "'") {
        const from = this.i + 1;
        parts.push(this.text.slice(from, this.literalString() - 1));
      } else {
        const from = this.i;
        while (BARE_KEY.test(this.peek())) this.i++;
        if (this.i === from) this.fail("expected a key", line);
        parts.push(this.text.slice(from, this.i));
      }
      this.skipInline();
      if (this.peek() !== ".") return parts;
      this.i++;
    }
  }
  /** Consumes a one-line "basic" string starting at the quote; returns the offset past it. */
  basicString(): number {
    const line = this.lineOf(this.i);
    this.i++;
    for (;;) {
      const c = this.peek();
      if (this.eof() || c === "\n") this.fail("unterminated string", line);
      this.i++;
      if (c === "\\") this.i++;
      else if (c === '"') return this.i;
    }
  }
  /** Consumes a one-line 'literal' string; returns the offset past it. */
  literalString(): number {
    const end = this.text.indexOf("'", this.i + 1);
    const nl = this.text.indexOf("\n", this.i + 1);
    if (end === -1 || (nl !== -1 && nl < end)) this.fail("unterminated string", this.lineOf(this.i));
    this.i = end + 1;
    return this.i;
  }
  /** Consumes a `"""` or `'''` string (up to two extra quotes may end its content). */
  multiline(q: string, line: number): void {
    this.i += 3;
    for (;;) {
      if (this.eof()) this.fail("unterminated multi-line string", line);
      const c = this.peek();
      if (q === '"' && c === "\\") {
        this.i += 2;
        continue;
      }
      if (c === q && this.text.startsWith(q.repeat(3), this.i)) {
        let n = 3;
        while (n < 5 && this.text[this.i + n] === q) n++;
        this.i += n;
        return;
      }
      this.i++;
    }
  }
  /** Consumes one value: string, array, inline table or scalar. */
  value(line: number): void {
    const c = this.peek();
    if (c === '"' || c === "'") {
      if (this.text.startsWith(c.repeat(3), this.i)) this.multiline(c, line);
      else if (c === '"') this.basicString();
      else this.literalString();
      return;
    }
    if (c === "[" || c === "{") {
      let depth = 0;
      do {
        const d = this.peek();
        if (this.eof()) this.fail("unterminated array or inline table", line);
        if (d === '"' || d === "'") {
          this.value(line);
          continue;
        }
        if (d === "#") {
          this.skipComment();
          continue;
        }
        if (d === "[" || d === "{") depth++;
        else if (d === "]" || d === "}") depth--;
        this.i++;
      } while (depth > 0);
      return;
    }
    // Scalar (number, boolean, date-time; a date-time may hold one space).
    const from = this.i;
    while (!this.eof() && !/[\n\r#,\]}]/.test(this.peek())) this.i++;
    while (this.i > from && /[ \t]/.test(this.text[this.i - 1] ?? "")) this.i--;
    if (this.i === from) this.fail("expected a value", line);
  }
}

/** Decodes the escapes of a TOML basic string's content. */
function decodeBasic(raw: string): string {
  return raw.replace(/\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)/g, (_, e: string) => {
    if (e.length > 1) return String.fromCodePoint(parseInt(e.slice(1), 16));
    const map: Record<string, string> = { b: "\b", t: "\t", n: "\n", f: "\f", r: "\r", e: "\x1b", '"': '"', "\\": "\\" };
    return map[e] ?? e;
  });
}

/** True when `a` and `b` are the same key path. */
export function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((p, k) => p === b[k]);
}

/** True when `prefix` is a (not necessarily proper) prefix of `path`. */
export function startsWithPath(path: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= path.length && prefix.every((p, k) => p === path[k]);
}

/** Formats a key path for a header or a message: bare parts as is, others quoted. */
export function formatPath(path: readonly string[], quote: '"' | "'" = '"'): string {
  return path
    .map((p) => {
      if (/^[A-Za-z0-9_-]+$/.test(p)) return p;
      if (quote === "'" && !/['\n\r]/.test(p)) return `'${p}'`;
      return JSON.stringify(p);
    })
    .join(".");
}
