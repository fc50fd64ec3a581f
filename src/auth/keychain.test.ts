// The lookup order, with real sources: a docker config file and a plugin program.
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Label } from "../labels/index.ts";
import { silentLogger } from "../log/index.ts";
import { CriAuthStore } from "./cri-auth.ts";
import { Keychain } from "./keychain.ts";
import { KubeletProviders } from "./kubelet.ts";

const dir = mkdtempSync(join(tmpdir(), "rafsnap-keychain-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const V1 = "credentialprovider.kubelet.k8s.io/v1";

test("labels, then CRI, then docker config, then kubelet providers; each only for its registry", async () => {
  const docker = join(dir, "config.json");
  writeFileSync(docker, JSON.stringify({ auths: { "reg.io": { auth: Buffer.from("docker:d").toString("base64") } } }));
  writeFileSync(
    join(dir, "p"),
    `#!/bin/sh\ncat >/dev/null\necho '${JSON.stringify({ apiVersion: V1, kind: "CredentialProviderResponse", cacheKeyType: "Global", auth: { "*.io": { username: "kube", password: "k" } } })}'\n`,
  );
  chmodSync(join(dir, "p"), 0o755);
  const kubelet = new KubeletProviders({
    providers: [{ name: "p", matchImages: ["*.io"], defaultCacheMs: 0, apiVersion: V1, args: [], env: [] }],
    binDir: dir,
    logger: silentLogger(),
  });
  const cri = new CriAuthStore();
  const k = new Keychain({ cri, dockerConfig: docker, kubelet, logger: silentLogger() });
  cri.set("reg.io/app:v1", { username: "cri", password: "c" });
  const labels = { [Label.PullUsername]: "lab", [Label.PullSecret]: "l" };
  expect(await k.resolve("reg.io/app:v1", labels)).toEqual({ source: "labels", credentials: { username: "lab", password: "l" } });
  expect(k.fromLabels("reg.io/app:v1")).toBe(true);
  expect(await k.resolve("reg.io/app:v1", { [Label.PullSecret]: "tok" })).toEqual({ source: "labels", credentials: { identityToken: "tok" } });
  expect(await k.resolve("reg.io/app:v1")).toEqual({ source: "cri", credentials: { username: "cri", password: "c" } });
  expect(await k.resolve("reg.io/other:v1")).toEqual({ source: "docker-config", credentials: { username: "docker", password: "d" } });
  expect(await k.resolve("other.io/app:v1")).toEqual({ source: "kubelet", credentials: { username: "kube", password: "k" } });
  expect(await k.resolve("other.org/app:v1")).toBeUndefined();
  expect(k.fromLabels("other.io/app:v1")).toBe(false);
});
