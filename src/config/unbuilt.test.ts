import { expect, test } from "bun:test";
import { defaultConfig } from "./schema.ts";
import { unbuiltFeatureWarnings } from "./unbuilt.ts";

test("the defaults turn on nothing unbuilt; each such setting gives one warning naming its key", () => {
  const c = defaultConfig();
  expect(unbuiltFeatureWarnings(c)).toEqual([]);
  c.metrics.address = "127.0.0.1:9110"; // built: no warning
  c.remote.auth.enable_cri_keychain = true; // built
  c.remote.auth.enable_kubelet_credential_providers = true; // built
  c.system.enable = true; // built: no warning
  c.experimental.enable_stargz = true;
  c.experimental.tarfs.enable_tarfs = true;
  const w = unbuiltFeatureWarnings(c);
  expect(w.length).toBe(2);
  expect(w[0]).toContain("enable_stargz");
  expect(w[1]).toContain("enable_tarfs");
});

test("the Kubernetes-secrets keychain is named as not built, with what to use instead", () => {
  const c = defaultConfig();
  c.remote.auth.enable_kubeconfig_keychain = true;
  const [w] = unbuiltFeatureWarnings(c);
  expect(w).toContain("enable_kubeconfig_keychain");
  expect(w).toContain("enable_kubelet_credential_providers");
});
