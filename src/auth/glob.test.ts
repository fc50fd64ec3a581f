import { expect, test } from "bun:test";
import { imageMatches, registryOf } from "./glob.ts";

test("host labels match one by one: a * never crosses a dot", () => {
  expect(imageMatches("*.example.com", "a.example.com/app:v1")).toBe(true);
  expect(imageMatches("*.example.com", "a.b.example.com/app")).toBe(false);
  expect(imageMatches("*.example.com", "example.com/app")).toBe(false);
  expect(imageMatches("*.*.amazonaws.com", "123.dkr.amazonaws.com/x")).toBe(true);
  expect(imageMatches("*", "localhost/x")).toBe(true);
  expect(imageMatches("*", "a.b/x")).toBe(false);
  expect(imageMatches("reg?stry.io", "registry.io/x")).toBe(true);
  expect(imageMatches("[a-c]r.io", "br.io/x")).toBe(true);
  expect(imageMatches("[^a-c]r.io", "br.io/x")).toBe(false);
  expect(imageMatches("[a-c.io", "a.io/x")).toBe(false); // malformed: matches nothing
});

test("ports must be equal; the glob's path must be a prefix of the image's", () => {
  expect(imageMatches("127.0.0.1:5000", "127.0.0.1:5000/multi:nydus")).toBe(true);
  expect(imageMatches("127.0.0.1", "127.0.0.1:5000/multi")).toBe(false);
  expect(imageMatches("127.0.0.1:5000", "127.0.0.1/multi")).toBe(false);
  expect(imageMatches("*.io:443", "a.io:443/x")).toBe(true);
  expect(imageMatches("reg.io/team", "reg.io/team/app:v1")).toBe(true);
  expect(imageMatches("reg.io/team", "reg.io/other/app")).toBe(false);
  expect(imageMatches("https://reg.io", "reg.io/x")).toBe(true);
});

test("the registry of an image is its host and port", () => {
  expect(registryOf("127.0.0.1:5000/a/b:c")).toBe("127.0.0.1:5000");
  expect(registryOf("reg.io")).toBe("reg.io");
});
