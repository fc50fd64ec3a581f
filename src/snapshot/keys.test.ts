import { expect, test } from "bun:test";
import { ErrorKind, kindOf } from "../errdefs/index.ts";
import { validateKey } from "./keys.ts";

test("keys containerd sends are accepted", () => {
  for (const k of ["default/3/sha256:abc", "k8s.io/12/extract-123 sha256:x", "a", "x/.../y", "k".repeat(4096)]) {
    expect(() => validateKey("key", k)).not.toThrow();
  }
});

test("bad keys are InvalidArgument and the message says which argument and why", () => {
  const cases: [string, string][] = [
    ["", "key must not be empty"],
    ["a/../b", '".." path segment'],
    ["..", '".." path segment'],
    ["a\0b", "NUL"],
    ["é".repeat(2049), "4098 bytes"],
  ];
  for (const [k, msg] of cases) {
    let err: unknown;
    try {
      validateKey("key", k);
    } catch (e) {
      err = e;
    }
    expect(kindOf(err)).toBe(ErrorKind.InvalidArgument);
    expect(String(err)).toContain(msg);
  }
});
