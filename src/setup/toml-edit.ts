/**
 * Text edits of a TOML document that set a few scalar keys in one table and leave every
 * other byte alone: a value is replaced in place (its key, spacing and trailing comment stay),
 * a missing key becomes a new line after the table's last key, a missing table becomes a new
 * `[header]` block after its closest relatives (or at the end). Tables written inline
 * (`a = { … }`) or through dotted keys (`a.b = …`) cannot be edited that way and are refused.
 */
import { failedPrecondition } from "../errdefs/index.ts";
import { formatPath, samePath, scanToml, startsWithPath, type TomlEntry } from "./toml-scan.ts";

/** A scalar we write. */
export type TomlScalar = string | boolean | number;

/** How new headers are spelled. */
export interface TomlStyle {
  /** Quote for header parts that are not bare keys (containerd 2.x's default uses `'`). */
  quote: '"' | "'";
}

/**
 * Formats a scalar as TOML: strings as 'literal' strings when `quote` is `'` and the string
 * allows it, else as basic strings (JSON escapes are valid TOML).
 */
export function tomlValue(v: TomlScalar, quote: '"' | "'" = '"'): string {
  if (typeof v !== "string") return String(v);
  return quote === "'" && !/['\n\r]/.test(v) ? `'${v}'` : JSON.stringify(v);
}

/** The value at `path` in a parsed document, or `undefined`. */
export function valueAt(doc: unknown, path: readonly string[]): unknown {
  let cur: unknown = doc;
  for (const p of path) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/**
 * Returns `text` with `values` set in table `table` (see the module doc for how).
 * `doc` is `Bun.TOML.parse(text)`; keys that already hold the wanted value are not touched,
 * and when all do, `text` is returned unchanged.
 *
 * @throws RafsnapError FailedPrecondition naming the table when it (or a table on its path) is
 *   written inline, with dotted keys, or as an array of tables, or when a wanted key is set
 *   in a form a line edit cannot replace.
 */
export function setTableKeys(text: string, doc: unknown, table: readonly string[], values: Readonly<Record<string, TomlScalar>>, style: TomlStyle): string {
  const missing = Object.entries(values).filter(([k, v]) => valueAt(doc, [...table, k]) !== v);
  if (missing.length === 0) return text;
  const name = formatPath(table, style.quote);
  const entries = scanToml(text);
  refuseUneditable(entries, table, Object.keys(values), name);

  const header = entries.find((e) => e.kind === "table" && samePath(e.path, table));
  if (header === undefined) return insertTable(text, entries, table, missing, style);

  // The table has a header: replace values in place, add missing keys after its last key.
  const body = entries.filter((e) => e.kind === "keyval" && samePath(e.section, table));
  const splices: { from: number; to: number; insert: string }[] = [];
  const added: string[] = [];
  for (const [k, v] of missing) {
    const kv = body.find((e) => samePath(e.path, [k]));
    if (kv) {
      // Keep the quoting the file used for this value.
      const q = text[kv.valueStart as number] === "'" ? "'" : '"';
      splices.push({ from: kv.valueStart as number, to: kv.valueEnd as number, insert: tomlValue(v, q) });
    } else if (valueAt(doc, [...table, k]) !== undefined) {
      throw failedPrecondition(`cannot edit [${name}] ${k}: it is set in a form a line edit cannot change; set ${k} = ${tomlValue(v)} by hand`);
    } else added.push(`${k} = ${tomlValue(v, style.quote)}`);
  }
  if (added.length) {
    const last = body[body.length - 1];
    const indent = last ? indentOf(text, last) : `${indentOf(text, header)}${usesIndentedKeys(entries) ? "  " : ""}`;
    const at = (last ?? header).lineEnd;
    const nl = at > 0 && text[at - 1] !== "\n" ? "\n" : "";
    splices.push({ from: at, to: at, insert: nl + added.map((l) => `${indent}${l}\n`).join("") });
  }
  splices.sort((a, b) => b.from - a.from);
  let out = text;
  for (const s of splices) out = out.slice(0, s.from) + s.insert + out.slice(s.to);
  return out;
}

/** Refuses tables a line edit cannot handle safely (see {@link setTableKeys}). */
function refuseUneditable(entries: TomlEntry[], table: readonly string[], keys: string[], name: string): void {
  for (const e of entries) {
    if (e.kind === "array-table" && (startsWithPath(table, e.path) || startsWithPath(e.path, table))) {
      throw failedPrecondition(`[${name}] is part of an array of tables ([[${formatPath(e.path)}]], line ${e.line}); edit it by hand`);
    }
    if (e.kind !== "keyval") continue;
    const full = [...e.section, ...e.path];
    const inline = startsWithPath(table, full); // the key defines the table or one above it
    const dotted = startsWithPath(full, table) && !startsWithPath(e.section, table);
    const dottedInside = samePath(e.section, table) && e.path.length > 1 && keys.includes(e.path[0] as string);
    if (inline || dotted || dottedInside) {
      throw failedPrecondition(
        `[${name}] is written inline or with dotted keys (line ${e.line}: ${formatPath(e.path)} = …); a line edit cannot change it safely — rewrite it as a [${name}] table or edit it by hand`,
      );
    }
  }
}

/**
 * Returns `text` with one more element `values` in the array of tables `table`
 * (`[[table]]`), unless an element already holds every one of `values` (then `text`).
 * The new block goes after the last header sharing the longest path prefix with it (so after
 * the array's last element when it has one), else at the end.
 *
 * @throws RafsnapError FailedPrecondition when `table` (or a table on its path) is written
 *   inline or with dotted keys, or is a plain table rather than an array of tables.
 */
export function appendArrayTable(text: string, doc: unknown, table: readonly string[], values: Readonly<Record<string, TomlScalar>>, style: TomlStyle): string {
  const current = valueAt(doc, table);
  const name = formatPath(table, style.quote);
  if (Array.isArray(current) && current.some((el) => Object.entries(values).every(([k, v]) => valueAt(el, [k]) === v))) return text;
  const entries = scanToml(text);
  for (const e of entries) {
    const full = e.kind === "keyval" ? [...e.section, ...e.path] : e.path;
    if ((e.kind === "keyval" && startsWithPath(table, full)) || (e.kind === "table" && samePath(e.path, table))) {
      throw failedPrecondition(`[[${name}]] is written as a plain or inline table (line ${e.line}); a line edit cannot add to it safely — edit it by hand`);
    }
  }
  if (current !== undefined && !Array.isArray(current)) throw failedPrecondition(`${name} is not an array of tables; edit it by hand`);
  return insertTable(text, entries, table, Object.entries(values), style, true);
}

/**
 * Adds a new `[table]` (or with `array`, `[[table]]`) block: after the last table that shares
 * the longest path prefix with it (containerd's own files group `[plugins."x".y]` under
 * `[plugins."x"]`), else at the end.
 */
function insertTable(text: string, entries: TomlEntry[], table: readonly string[], values: [string, TomlScalar][], style: TomlStyle, array = false): string {
  const headers = entries.filter((e) => e.kind === "table" || e.kind === "array-table");
  let after: TomlEntry | undefined;
  for (let n = table.length - 1; n >= 1 && after === undefined; n--) {
    const prefix = table.slice(0, n);
    after = headers.findLast((h) => startsWithPath(h.path, prefix));
  }
  // Indent like the file: containerd's own files indent a header two spaces per level below
  // its parent table; a table appended at the end has no parent next to it.
  const indented = headers.some((h) => h.start > h.lineStart);
  const headerIndent = indented && after ? "  ".repeat(table.length - 1) : "";
  const keyIndent = indented || usesIndentedKeys(entries) ? `${headerIndent}  ` : "";
  const [open, close] = array ? ["[[", "]]"] : ["[", "]"];
  const block = [
    `${headerIndent}${open}${formatPath(table, style.quote)}${close}`,
    ...values.map(([k, v]) => `${keyIndent}${k} = ${tomlValue(v, style.quote)}`),
  ];
  if (after === undefined) {
    const sep = text === "" ? "" : text.endsWith("\n\n") ? "" : text.endsWith("\n") ? "\n" : "\n\n";
    return `${text}${sep}${block.join("\n")}\n`;
  }
  // End of that table's section: its last statement before the next header (trailing
  // comments and blank lines stay with the header that follows them).
  const idx = entries.indexOf(after);
  let last: TomlEntry = after;
  for (const e of entries.slice(idx + 1)) {
    if (e.kind !== "keyval") break;
    last = e;
  }
  const at = last.lineEnd;
  const nl = at > 0 && text[at - 1] !== "\n" ? "\n" : "";
  return `${text.slice(0, at)}${nl}\n${block.join("\n")}\n${text.slice(at)}`;
}

function indentOf(text: string, e: TomlEntry): string {
  return text.slice(e.lineStart, e.start);
}

/** Whether keys inside tables are indented in this file (containerd's default style). */
function usesIndentedKeys(entries: TomlEntry[]): boolean {
  const inTables = entries.filter((e) => e.kind === "keyval" && e.section.length > 0);
  return inTables.length === 0 || inTables.some((e) => e.start > e.lineStart);
}
