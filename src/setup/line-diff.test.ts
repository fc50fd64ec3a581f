import { describe, expect, test } from "bun:test";
import { unifiedDiff } from "./line-diff.ts";

/** Applies a unified diff produced by {@link unifiedDiff} to `oldText` (test oracle). */
function applyDiff(oldText: string, diff: string): string {
  const a = oldText === "" ? [] : oldText.replace(/\n$/, "").split("\n");
  const out: string[] = [];
  let pos = 0;
  for (const hunk of diff.split(/^@@ /m).slice(1)) {
    const m = /^-(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@\n/.exec(hunk);
    if (!m) throw new Error(`bad hunk ${hunk}`);
    const oldStart = Number(m[1]) - (m[2] === "0" ? 0 : 1);
    while (pos < oldStart) out.push(a[pos++] as string);
    for (const l of hunk
      .slice(m[0].length)
      .split("\n")
      .filter((x) => x !== "")) {
      if (l[0] === "+") out.push(l.slice(1));
      else {
        expect(a[pos]).toBe(l.slice(1));
        if (l[0] === " ") out.push(l.slice(1));
        pos++;
      }
    }
  }
  while (pos < a.length) out.push(a[pos++] as string);
  return out.length ? `${out.join("\n")}\n` : "";
}

describe("unifiedDiff", () => {
  test("equal texts give no diff", () => {
    expect(unifiedDiff("a\nb\n", "a\nb\n", "x", "y")).toBe("");
  });
  test("an insertion in the middle, with 3 lines of context", () => {
    const a = "1\n2\n3\n4\n5\n6\n7\n8\n";
    const b = "1\n2\n3\n4\nnew\n5\n6\n7\n8\n";
    expect(unifiedDiff(a, b, "a", "b")).toBe("--- a\n+++ b\n@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+new\n 5\n 6\n 7\n");
  });
  test("from an empty file", () => {
    expect(unifiedDiff("", "x\ny\n", "/dev/null", "f")).toBe("--- /dev/null\n+++ f\n@@ -0,0 +1,2 @@\n+x\n+y\n");
  });
  test("random edits round-trip through the diff", () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const a = Array.from({ length: rnd(40) }, () => `l${rnd(8)}`);
      const b = [...a];
      for (let e = rnd(6); e > 0; e--) {
        const at = rnd(b.length + 1);
        if (rnd(2) === 0) b.splice(at, 0, `n${rnd(8)}`);
        else b.splice(at, 1);
      }
      const at = a.length ? `${a.join("\n")}\n` : "";
      const bt = b.length ? `${b.join("\n")}\n` : "";
      expect(applyDiff(at, unifiedDiff(at, bt, "a", "b"))).toBe(bt);
    }
  });
});
