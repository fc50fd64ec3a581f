import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileGoRegexp } from "./regexp.ts";

// Expected values were produced by Go's regexp package (MatchString) for the same inputs;
// the last test asks Go itself again.
const cases: [string, Record<string, boolean>][] = [
  ["^a.c$", { abc: true, "a\nc": false, "a\rc": true, "a\u2028c": true, ac: false }],
  ["(?s)^a.c$", { "a\nc": true, "a\rc": true }],
  ["^b$", { "a\nb": false, "b\n": false, b: true }],
  ["(?m)^b$", { "a\nb": true, "b\nc": true, "a\rb": false, "a\u2028b": false }],
  ["\\Aab\\z", { ab: true, "ab\n": false, xab: false }],
  ["(?i)kelvin", { KELVIN: true, "\u212aelvin": true, kelvin: true }],
  ["(?i)\\bk", { k: true, "\u212a": false, ak: false, "a\u212a": true }],
  ["(?i)\\W", { k: false, "\u212a": false, "\u017f": false, "-": true, é: true }],
  ["(?i)[^\\W]", { k: true, "\u212a": true, "-": false }],
  ["(?i)\\p{^Lu}", { a: false, A: false, "1": true, "-": true }],
  ["(?i)[\\P{Lu}K]", { a: false, k: true, K: true, "1": true }],
  ["a(?i)b|c", { aB: true, C: true, ab: true, c: true, AB: false }],
  ["(a(?i)b|c)d", { aBd: true, Cd: true, cD: false }],
  ["(?i:a)b", { Ab: true, AB: false }],
  ["(?i)a(?-i)b", { Ab: true, AB: false }],
  ["\\s", { " ": true, "\t": true, "\v": false, "\u00a0": false, "\u2028": false }],
  ["[[:space:]]", { "\v": true, "\u00a0": false }],
  ["[[:^alpha:]]", { a: false, "1": true, é: true }],
  ["[[:word:]]+$", { a_1: true, é: false }],
  ["\\pL", { é: true, "1": false }],
  ["\\p{Greek}", { α: true, a: false }],
  ["\\PL", { é: false, "1": true }],
  ["[]a]", { "]": true, a: true, b: false }],
  ["[^]a]", { "]": false, a: false, b: true }],
  ["[a-]", { "-": true, a: true, b: false }],
  ["a{2}", { a: false, aa: true }],
  ["a{,2}", { "a{,2}": true, aa: false }],
  ["a{01}", { "a{01}": true, a: false }],
  ["x{", { "x{": true }],
  ["^}$", { "}": true }],
  ["\\Q.*\\E", { ".*": true, ab: false }],
  ["\\x41\\x{1F600}\\101\\0", { "A\u{1F600}A\u0000": true, x: false }],
  ["\\.\\-\\#", { ".-#": true }],
  ["(?P<n>a)(?P<m>b)c", { abc: true }],
  ["(?U)a+", { aaa: true }],
  ["é+", { éé: true, e: false }],
  ["\\d+", { "123": true, "١٢٣": false }],
  ["^$", { "": true, a: false }],
  ["", { "": true, anything: true }],
];

/** Patterns that make a backtracking engine take exponential time; RE2 takes linear time. */
const pathological: [string, string[]][] = [
  ["(a+)+$|!", [`${"a".repeat(33)}!`, "a".repeat(5000), "b"]],
  ["(a|a)*b", ["a".repeat(5000), `${"a".repeat(40)}b`]],
  ["(x+x+)+y", ["x".repeat(5000)]],
  ["^(\\w+\\s?)*$", [`${"word ".repeat(2000)}!`]],
  ["((a{1,10}){1,10}){1,10}c", ["a".repeat(3000)]],
];

/** Patterns Go refuses, with the reason Go gives. */
const refused: [string, string][] = [
  ["(", "missing closing ): `(`"],
  [")", "unexpected ): `)`"],
  ["a**", "invalid nested repetition operator: `**`"],
  ["*a", "missing argument to repetition operator: `*`"],
  ["[a", "missing closing ]: `[a`"],
  ["[z-a]", "invalid character class range: `z-a`"],
  ["a{1001}", "invalid repeat count: `{1001}`"],
  ["(a{1000}){1000}", "invalid repeat count: `{1000}`"],
  ["\\1", "invalid escape sequence: `\\1`"],
  ["\\C", "invalid escape sequence: `\\C`"],
  ["(?=a)", "invalid or unsupported Perl syntax: `(?=`"],
  ["[[:foo:]]", "invalid character class range: `[:foo:]`"],
  ["a\\", "trailing backslash at end of expression: ``"],
];

describe("compileGoRegexp (re2js) matches like Go's regexp.MatchString", () => {
  test.each(cases)("%j", (pattern, expected) => {
    const re = compileGoRegexp(pattern);
    const actual = Object.fromEntries(Object.keys(expected).map((s) => [s, re.test(s)]));
    expect(actual).toEqual(expected);
  });

  test.each(refused)("refuses %j as Go does", (pattern, message) => {
    expect(() => compileGoRegexp(pattern)).toThrow(message);
  });

  test("pathological patterns and every case above give Go's own answers (asked through a Go helper)", () => {
    const queries = [
      ...cases.map(([p, e]) => ({ pattern: p, inputs: Object.keys(e) })),
      ...pathological.map(([p, i]) => ({ pattern: p, inputs: i })),
      ...refused.map(([p]) => ({ pattern: p, inputs: ["a"] })),
    ];
    const cache = mkdtempSync(join(tmpdir(), "rafsnap-gocache-"));
    try {
      const r = Bun.spawnSync(["go", "run", join(import.meta.dir, "../../test/support/go-regexp/main.go")], {
        stdin: Buffer.from(JSON.stringify({ patterns: queries })),
        env: { ...process.env, GO111MODULE: "off", GOCACHE: join(cache, "build"), GOFLAGS: "" },
      });
      if (r.exitCode !== 0) throw new Error(`go run failed (the Go toolchain comes from scripts/deps.sh): ${r.stderr.toString()}`);
      const answers = JSON.parse(r.stdout.toString()) as { error?: string; matches: boolean[] }[];
      const ours = queries.map((q) => {
        try {
          const re = compileGoRegexp(q.pattern);
          return { matches: q.inputs.map((s) => re.test(s)) };
        } catch (e) {
          return { error: `error parsing regexp: ${(e as Error).message}`, matches: [] as boolean[] };
        }
      });
      expect(ours).toEqual(answers.map((a) => (a.error ? { error: a.error, matches: [] } : { matches: a.matches })));
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  }, 120_000);
});
