import { describe, expect, test } from "bun:test";
import { translateGoRegexp } from "./go-regexp.ts";

// Expected values were produced by Go's regexp package (MatchString) for the same inputs.
const cases: [string, Record<string, boolean>][] = [
  ["^a.c$", { abc: true, "a\nc": false, "a\rc": true, "a\u2028c": true, ac: false }],
  ["(?s)^a.c$", { "a\nc": true, "a\rc": true }],
  ["^b$", { "a\nb": false, "b\n": false, b: true }],
  ["(?m)^b$", { "a\nb": true, "b\nc": true, "a\rb": false, "a\u2028b": false }],
  ["\\Aab\\z", { ab: true, "ab\n": false, xab: false }],
  ["(?i)kelvin", { KELVIN: true, "\u212aelvin": true, kelvin: true }],
  ["(?i)\\bk", { k: true, "\u212a": false, ak: false, "a\u212a": true }],
  ["(?i)\\W", { k: false, "\u212a": false, "\u017f": false, "-": true, "é": true }],
  ["(?i)[^\\W]", { k: true, "\u212a": true, "-": false }],
  ["(?i)\\p{^Lu}", { a: false, A: false, "1": true, "-": true }],
  ["(?i)[\\P{Lu}K]", { a: false, k: true, K: true, "1": true }],
  ["a(?i)b|c", { aB: true, C: true, ab: true, c: true, AB: false }],
  ["(a(?i)b|c)d", { aBd: true, Cd: true, cD: false }],
  ["(?i:a)b", { Ab: true, AB: false }],
  ["(?i)a(?-i)b", { Ab: true, AB: false }],
  ["\\s", { " ": true, "\t": true, "\v": false, "\u00a0": false, "\u2028": false }],
  ["[[:space:]]", { "\v": true, "\u00a0": false }],
  ["[[:^alpha:]]", { a: false, "1": true, "é": true }],
  ["[[:word:]]+$", { a_1: true, "é": false }],
  ["\\pL", { "é": true, "1": false }],
  ["\\p{Greek}", { "α": true, a: false }],
  ["\\PL", { "é": false, "1": true }],
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
  ["(?P<n>a)(?<m>b)(?P<n>c)", { abc: true }],
  ["(?U)a+", { aaa: true }],
  ["é+", { "éé": true, e: false }],
  ["\\d+", { "123": true, "١٢٣": false }],
  ["^$", { "": true, a: false }],
  ["", { "": true, anything: true }],
];

describe("translateGoRegexp matches like Go's regexp.MatchString", () => {
  test.each(cases)("%j", (pattern, expected) => {
    const re = translateGoRegexp(pattern);
    const actual = Object.fromEntries(Object.keys(expected).map((s) => [s, re.test(s)]));
    expect(actual).toEqual(expected);
  });
});

describe("translateGoRegexp rejects what Go rejects", () => {
  // Go's messages for reference; ours name the same problem, or JS's equivalent.
  test.each<[string, string | RegExp]>([
    ["(", "missing closing )"],
    [")", "unexpected )"],
    ["a**", /repeat/],
    ["*a", /repeat/],
    ["[a", "missing closing ]"],
    ["[z-a]", "invalid character class range"],
    ["a{1001}", "invalid repeat count: {1001}"],
    ["a{2,1}", "invalid repeat count: {2,1}"],
    ["\\1", "invalid escape sequence: \\1"],
    ["\\8", "invalid escape sequence: \\8"],
    ["\\C", "invalid escape sequence: \\C"],
    ["\\Z", "invalid escape sequence: \\Z"],
    ["(?=a)", "invalid or unsupported Perl syntax"],
    ["(?!a)", "invalid or unsupported Perl syntax"],
    ["(?<=a)", "invalid named capture"],
    ["(?<!a)", "invalid named capture"],
    ["[\\b]", "invalid escape sequence: \\b"],
    ["[[:foo:]]", "invalid character class range: [:foo:]"],
    ["(?P<>a)", "invalid named capture"],
    ["(?x)", "invalid or unsupported Perl syntax"],
    ["(?i-)", "invalid or unsupported Perl syntax"],
    ["a\\", "trailing backslash at end of expression"],
    ["\\x{110000}", "invalid escape sequence: \\x"],
    ["\\p{Foo}", /./],
  ])("%j", (pattern, message) => {
    expect(() => translateGoRegexp(pattern)).toThrow(message);
  });

  test("a repetition right after a flag group is refused rather than mistranslated", () => {
    expect(() => translateGoRegexp("a(?i)*")).toThrow("directly after a flag group");
    expect(() => translateGoRegexp("a{2}(?U)?")).toThrow("directly after a flag group");
  });

  test("\\b? is legal in Go and stays legal", () => {
    expect(translateGoRegexp("\\b?a").test("a")).toBe(true);
  });
});
