import { describe, expect, test } from "bun:test";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { parseFilters, snapshotInfoAdaptor } from "./filters.ts";
import type { FieldAdaptor, SnapshotFilterFields } from "./filters.ts";

/** Parses, expecting an InvalidArgument error, and returns its message. */
function parseError(filters: string[]): string {
  try {
    parseFilters(filters);
  } catch (err) {
    expect(err).toBeInstanceOf(RafsnapError);
    expect((err as RafsnapError).kind).toBe(ErrorKind.InvalidArgument);
    return (err as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(filters)} to be rejected`);
}

describe("containerd pkg/filters TestFilters corpus", () => {
  // The corpus and adaptor of containerd's filter_test.go: name/other are present when
  // non-empty, labels.<k> joins the rest of the path with ".".
  type Entry = { name: string; other?: string; labels?: Record<string, string> };
  const corpus: Entry[] = [
    { name: "foo", labels: { foo: "true" } },
    { name: "bar" },
    { name: "foo", labels: { foo: "present", "more complex label": "present" } },
    { name: "bar", labels: { bar: "true" } },
    { name: "fooer", labels: { 'more complex label with \\ and "': "present" } },
    { name: "fooer", labels: { 'more complex label with \\ and ".post': "present" } },
    { name: "baz", other: "too complex, yo" },
    { name: "bazo", other: "abc" },
    { name: "compound", labels: { foo: "omg_asdf.asdf-qwer" } },
  ];
  const adapt =
    (e: Entry): FieldAdaptor =>
    (path) => {
      switch (path[0]) {
        case "name":
          return { value: e.name, present: e.name !== "" };
        case "other":
          return { value: e.other ?? "", present: (e.other ?? "") !== "" };
        case "labels": {
          const v = e.labels?.[path.slice(1).join(".")];
          return { value: v ?? "", present: v !== undefined };
        }
      }
      return { value: "", present: false };
    };
  const matching = (f: string) => {
    const filter = parseFilters([f]);
    return corpus.flatMap((e, i) => (filter.match(adapt(e)) ? [i] : []));
  };

  test.each<[string, string, number[]]>([
    ["Empty", "", [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    ["Present", "name", [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    ["LabelPresent", "labels.foo", [0, 2, 8]],
    ["NameAndLabelPresent", "labels.foo,name", [0, 2, 8]],
    ["LabelValue", "labels.foo==true", [0]],
    ["LabelValuePunctuated", "labels.foo==omg_asdf.asdf-qwer", [8]],
    ["Name", "name==bar", [1, 3]],
    ["NameNotEqual", "name!=bar", [0, 2, 4, 5, 6, 7, 8]],
    ["NameAndLabelPresent2", "name==bar,labels.bar", [3]],
    ["QuotedValue", 'other=="too complex, yo"', [6]],
    ["RegexpValue", "other~=[abc]+,name!=foo", [6, 7]],
    ["RegexpQuotedValue", "other~=/[abc]+/,name!=foo", [6, 7]],
    ["RegexpQuotedValueRepeat", "other~=/[abc]{1,2}/,name!=foo", [6, 7]],
    ["RegexpQuotedValueGarbage", 'other~=/[abc]{0,1}"\\//,name!=foo', []],
    ["NameAndLabelValue", "name==bar,labels.bar==true", [3]],
    ["NameAndLabelValueNoMatch", "name==bar,labels.bar==wrong", []],
    ["LabelQuotedFieldPathPresent", 'name==foo,labels."more complex label"', [2]],
    ["LabelQuotedFieldPathPresentWithQuoted", 'labels."more complex label with \\\\ and \\""==present', [4]],
    ["LabelQuotedFieldPathPresentWithQuotedEmbed", 'labels."more complex label with \\\\ and \\"".post==present', [5]],
    ["RegexpAltQuoted", "other~=|abc|", [7]],
  ])("%s: %s", (_, input, expected) => {
    expect(matching(input)).toEqual(expected);
  });

  // containerd's error strings, with the position its `>|x|<` marker points at.
  test.each<[string, string, string]>([
    ["labels.|foo|==omg_asdf.asdf-qwer", "position 7", "invalid quote encountered"],
    ['labels.?"more complex label with \\\\ and \\"".post==present', "position 7", "expected field or quoted"],
    ["name==foo,", "end of input", "expected field or quoted"],
    ["labels.", "end of input", "expected field or quoted"],
    ["image~=,id?=?fbaq", "position 7", "expected value or quoted"],
    ["labels.ns/key==value", "position 9", "quoted literal not terminated"],
    ["labels.key==/value", "position 12", "quoted literal not terminated"],
  ])("rejects %s", (input, where, reason) => {
    expect(parseError([input])).toBe(`invalid filter ${JSON.stringify(input)} at ${where}: ${reason}`);
  });
});

describe("scanner behaviour (containerd scanner_test.go)", () => {
  /** The field paths a filter looks up, on an object where every field has value `value`. */
  const fields = (f: string, value = "value") => {
    const seen: (readonly string[])[] = [];
    const matched = parseFilters([f]).match((path) => {
      seen.push(path);
      return { value, present: true };
    });
    expect(matched).toBe(true);
    return seen;
  };

  test("quoted leading field and punctuated values", () => {
    expect(fields('"leading quote".postquote==value')).toEqual([["leading quote", "postquote"]]);
    const punctuated = "punctuated_value.foo-bar";
    expect(fields(`compound.labels==${punctuated}`, punctuated)).toEqual([["compound", "labels"]]);
  });

  test("Go escapes in quoted strings", () => {
    expect(fields('labels."a\\x41\\u00e9\\101\\t"')).toEqual([["labels", "aAéA\t"]]);
    expect(fields('labels."\\U0001F600"')).toEqual([["labels", "\u{1F600}"]]);
    expect(fields('name~="asdf\\n\\tfooo"', "asdf\n\tfooo")).toEqual([["name"]]);
  });

  test("whitespace between tokens, but not after a value or fieldpath", () => {
    expect(fields(" name == foo", "foo")).toEqual([["name"]]);
    expect(fields("name==foo, labels.bar", "foo")).toEqual([["name"], ["labels", "bar"]]);
    expect(parseError(["name==foo "])).toBe('invalid filter "name==foo " at position 9: unexpected input: " "');
    expect(parseError(["labels.a ,b"])).toContain('at position 9: expected an operator ("=="|"!="|"~=")');
    expect(parseError(["doublevalue==value value"])).toContain("at position 18: unexpected input");
  });

  test.each<[string, string]>([
    ["foo = bar", 'unsupported operator "="'],
    ["name~=牛,labels.moo=true", 'unsupported operator "="'],
    ["interrupted=", 'unsupported operator "="'],
    ["name===x", 'unsupported operator "==="'],
    ["name==", "expected value or quoted"],
    ["name==.x", "expected value or quoted"],
    ["foo\u0000bar", "unexpected null"],
    ['labels."\\g"', "illegal escape sequence"],
    ['labels."\\xaz"', "illegal numeric escape sequence"],
    ['labels."containerd.io\nkey"==value', "quoted literal not terminated"],
    ["labels.containerd.io/key==value", "quoted literal not terminated"],
    ['labels."\\400"', "unquoting failed: quote syntax error"],
    ["name==/x/", "invalid quote encountered"],
    ["name~=/a\\.b/", "illegal escape sequence"],
    ["==x", "expected field or quoted"],
    ["name,", "expected field or quoted"],
    ["labels.foo-bar", 'expected an operator ("=="|"!="|"~=")'],
  ])("rejects %j: %s", (input, reason) => {
    expect(parseError([input])).toEndWith(`: ${reason}`);
  });

  test("the message names the filter and its position, not only the reason", () => {
    const msg = parseError(["kind==active", "labels.foo==bar,,x"]);
    expect(msg).toBe('invalid filter "labels.foo==bar,,x" at position 16: expected field or quoted');
  });
});

describe("snapshot filters (containerd testsuite checkWalk)", () => {
  const gcRoot = "containerd.io/gc.root";
  const infos: SnapshotFilterFields[] = [
    { name: "a-np", parent: "", kind: "active", labels: { [gcRoot]: "check-walk" } },
    { name: "p", parent: "", kind: "committed", labels: { [gcRoot]: "check-walk" } },
    { name: "a", parent: "p", kind: "active", labels: { [gcRoot]: "check-walk" } },
    { name: "v", parent: "p", kind: "view", labels: { [gcRoot]: "check-walk" } },
    { name: "p-wl", parent: "", kind: "committed", labels: { l: "1", [gcRoot]: "check-walk" } },
    { name: "a-wl", parent: "p-wl", kind: "active", labels: { l: "2", [gcRoot]: "check-walk" } },
    { name: "v-wl", parent: "p-wl", kind: "view", labels: { l: "3", [gcRoot]: "check-walk" } },
    { name: "a-np-wl", parent: "", kind: "active", labels: { l: "2", [gcRoot]: "check-walk" } },
  ];
  const walk = (filters: string[]) => {
    const f = parseFilters(filters);
    return infos
      .filter((i) => f.match(snapshotInfoAdaptor(i)))
      .map((i) => i.name)
      .sort();
  };

  test.each<[string[], string[]]>([
    [['labels."containerd.io/gc.root"==check-walk'], ["a-np", "p", "a", "v", "p-wl", "a-wl", "v-wl", "a-np-wl"]],
    [['kind==active,labels."containerd.io/gc.root"==check-walk'], ["a-np", "a", "a-wl", "a-np-wl"]],
    [['kind==view,labels."containerd.io/gc.root"==check-walk'], ["v", "v-wl"]],
    [['kind==committed,labels."containerd.io/gc.root"==check-walk'], ["p", "p-wl"]],
    [
      ["name==p", "name==a-np-wl"],
      ["p", "a-np-wl"],
    ],
    [["name==a-wl,labels.l"], ["a-wl"]],
    [["parent==p"], ["a", "v"]],
    [['parent!="",labels."containerd.io/gc.root"==check-walk'], ["a", "v", "a-wl", "v-wl"]],
    [["labels.l"], ["p-wl", "a-wl", "v-wl", "a-np-wl"]],
    [["labels.l==2"], ["a-wl", "a-np-wl"]],
  ])("%j", (filters, expected) => {
    expect(walk(filters)).toEqual(expected.sort());
  });

  test("filters containerd clients send", () => {
    expect(walk(['labels."containerd.io/gc.root"'])).toHaveLength(8);
    expect(walk(["kind==committed"])).toEqual(["p", "p-wl"]);
    expect(walk(["parent==p-wl"])).toEqual(["a-wl", "v-wl"]);
    expect(walk(["name~=^a-np"])).toEqual(["a-np", "a-np-wl"]);
    expect(walk(["name~=/-wl$/,kind!=view"])).toEqual(["a-np-wl", "a-wl", "p-wl"]);
    expect(walk(["kind==active,labels.l==2"])).toEqual(["a-np-wl", "a-wl"]);
    expect(walk(["kind==view", "kind==committed"])).toEqual(["p", "p-wl", "v", "v-wl"]);
  });

  test("an empty list or an empty string matches everything", () => {
    expect(walk([])).toHaveLength(8);
    expect(walk([""])).toHaveLength(8);
    expect(walk(["name==none", ""])).toHaveLength(8);
  });

  test("every string is parsed, even after one that matches all", () => {
    expect(parseError(["", "name=="])).toContain('invalid filter "name=="');
  });

  test("`|` is not an OR operator", () => {
    // Inside a bare value `|` is an ordinary character: this compares kind with
    // "view|kind==active" and matches nothing (as in containerd).
    expect(walk(["kind==view|kind==active"])).toEqual([]);
    // At the start of a value it is a regexp quote, which `==` refuses.
    expect(parseError(["kind==|view|"])).toBe('invalid filter "kind==|view|" at position 6: invalid quote encountered');
    expect(walk(["kind~=|view|"])).toEqual(["v", "v-wl"]);
    // OR inside one string is done by the regexp itself.
    expect(walk(['kind~="^(view|committed)$"'])).toEqual(["p", "p-wl", "v", "v-wl"]);
  });

  test("adaptor fields", () => {
    const a = snapshotInfoAdaptor({ name: "n", parent: "", kind: "active", labels: { "a.b": "x", "": "e" } });
    expect(a(["name"])).toEqual({ value: "n", present: true });
    expect(a(["parent"])).toEqual({ value: "", present: true });
    expect(a(["kind"])).toEqual({ value: "active", present: true });
    expect(a(["labels", "a", "b"])).toEqual({ value: "x", present: true });
    expect(a(["labels"])).toEqual({ value: "e", present: true });
    expect(a(["labels", "constructor"])).toEqual({ value: "", present: false });
    expect(a(["labels", "missing"])).toEqual({ value: "", present: false });
    expect(a(["id"])).toEqual({ value: "", present: false });
    expect(a([])).toEqual({ value: "", present: false });
  });

  test("operators on absent fields follow containerd", () => {
    const none = snapshotInfoAdaptor({ name: "n", parent: "", kind: "view", labels: {} });
    const match = (f: string) => parseFilters([f]).match(none);
    expect(match('labels.x==""')).toBe(false); // == requires presence
    expect(match("labels.x!=y")).toBe(true); // != compares "" with y
    expect(match('labels.x!=""')).toBe(false);
    expect(match('labels.x~="^$"')).toBe(true); // ~= matches against ""
    expect(match("parent")).toBe(true); // parent is always present
  });
});

describe("regular expressions", () => {
  test("invalid regexps are InvalidArgument at parse time", () => {
    expect(parseError(["name~=("])).toBe('invalid filter "name~=(" at position 6: invalid regular expression "(": missing closing ): `(`');
    expect(parseError(["name~=a{1001}"])).toContain("invalid repeat count");
    expect(parseError(["name~=\\C"])).toContain("invalid escape sequence");
  });

  test("Go semantics survive the translation", () => {
    const m = (re: string, value: string) => parseFilters([`name~=${re}`]).match(() => ({ value, present: true }));
    expect(m('"^a.c$"', "a\rc")).toBe(true); // Go's . excludes only \n
    expect(m("(?i)kelvin", "\u212aELVIN")).toBe(true);
    expect(m("a\\.b", "a.b")).toBe(true);
    expect(m("a\\.b", "axb")).toBe(false);
  });
});
