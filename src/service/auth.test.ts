import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../config/index.ts";
import { ErrorKind } from "../errdefs/index.ts";
import { silentLogger } from "../log/index.ts";
import { buildAuth } from "./auth.ts";

const dir = mkdtempSync(join(tmpdir(), "rafsnap-svc-auth-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const failure = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as Error & { kind: string };
  }
  throw new Error("no failure");
};

test("kubelet providers need both keys and a valid config file; the CRI proxy is built only when asked", () => {
  const c = defaultConfig();
  expect(buildAuth(c, silentLogger()).criProxy).toBeUndefined();
  c.remote.auth.enable_kubelet_credential_providers = true;
  const e = failure(() => buildAuth(c, silentLogger()));
  expect(e.kind).toBe(ErrorKind.FailedPrecondition);
  expect(e.message).toContain("credential_provider_config and credential_provider_bin_dir");
  c.remote.auth.credential_provider_config = join(dir, "p.yaml");
  c.remote.auth.credential_provider_bin_dir = dir;
  writeFileSync(join(dir, "p.yaml"), "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: []\n");
  const bad = failure(() => buildAuth(c, silentLogger()));
  expect(bad.kind).toBe(ErrorKind.InvalidArgument);
  expect(bad.message).toContain(join(dir, "p.yaml"));
  c.remote.auth.enable_kubelet_credential_providers = false;
  c.remote.auth.enable_cri_keychain = true;
  const parts = buildAuth(c, silentLogger());
  expect(parts.criProxy).toBeDefined();
  parts.criProxy?.close();
});
