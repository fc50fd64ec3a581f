import { expect, test } from "bun:test";
import { CriAuthStore, credentialsOfAuthConfig } from "./cri-auth.ts";

const empty = { username: "", password: "", auth: "", identityToken: "", registryToken: "" };

test("an AuthConfig gives user and password, then base64 auth, then a token", () => {
  expect(credentialsOfAuthConfig({ ...empty, username: "u", password: "p" })).toEqual({ username: "u", password: "p" });
  expect(credentialsOfAuthConfig({ ...empty, auth: Buffer.from("u:p:q").toString("base64") })).toEqual({ username: "u", password: "p:q" });
  expect(credentialsOfAuthConfig({ ...empty, auth: Buffer.from("nocolon").toString("base64") })).toBeUndefined();
  expect(credentialsOfAuthConfig({ ...empty, identityToken: "t" })).toEqual({ identityToken: "t" });
  expect(credentialsOfAuthConfig({ ...empty, registryToken: "r" })).toEqual({ identityToken: "r" });
  expect(credentialsOfAuthConfig(empty)).toBeUndefined();
  expect(credentialsOfAuthConfig(undefined)).toBeUndefined();
});

test("the store keys images by their normalized reference", () => {
  const s = new CriAuthStore();
  s.set("busybox", { username: "u", password: "p" });
  expect(s.get("docker.io/library/busybox:latest")).toEqual({ username: "u", password: "p" });
  expect(s.get("docker.io/library/busybox:1")).toBeUndefined();
  s.set("not a ref!", { username: "x", password: "y" });
  expect(s.size).toBe(1);
});
