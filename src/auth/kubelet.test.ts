// The exec protocol against real plugin programs (small shell scripts written here).
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind } from "../errdefs/index.ts";
import { silentLogger } from "../log/index.ts";
import { type CredentialProvider, KubeletProviders, parseProviderConfig, runPlugin } from "./kubelet.ts";

const dir = mkdtempSync(join(tmpdir(), "rafsnap-kubelet-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const V1 = "credentialprovider.kubelet.k8s.io/v1";

/** Writes an executable plugin `name` whose body is `sh`. */
function plugin(name: string, sh: string): void {
  writeFileSync(join(dir, name), `#!/bin/sh\n${sh}\n`);
  chmodSync(join(dir, name), 0o755);
}

/** A plugin that counts its runs in `<name>.count`, saves its stdin and answers `answer`. */
function answering(name: string, answer: object): void {
  plugin(
    name,
    `cat > "${dir}/${name}.req"\necho x >> "${dir}/${name}.count"\necho "$EXTRA $1" > "${dir}/${name}.env"\ncat <<'JSON'\n${JSON.stringify(answer)}\nJSON`,
  );
}
const runs = (name: string) => {
  try {
    return readFileSync(join(dir, `${name}.count`), "utf8")
      .trim()
      .split("\n").length;
  } catch {
    return 0;
  }
};

const provider = (name: string, extra: Partial<CredentialProvider> = {}): CredentialProvider => ({
  name,
  matchImages: ["*.example.com", "127.0.0.1:5000"],
  defaultCacheMs: 60_000,
  apiVersion: V1,
  args: [],
  env: [],
  ...extra,
});
const logger = silentLogger();
const response = (auth: object, more: object = {}) => ({ apiVersion: V1, kind: "CredentialProviderResponse", cacheKeyType: "Registry", auth, ...more });

describe("CredentialProviderConfig", () => {
  const yaml = `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com", "127.0.0.1:5000"]
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials]
    env:
      - name: AWS_PROFILE
        value: temp
`;
  test("YAML and JSON parse to the same providers", () => {
    const p = parseProviderConfig(yaml, "c.yaml");
    expect(p).toEqual([
      {
        name: "ecr-credential-provider",
        matchImages: ["*.dkr.ecr.*.amazonaws.com", "127.0.0.1:5000"],
        defaultCacheMs: 12 * 3600_000,
        apiVersion: V1,
        args: ["get-credentials"],
        env: [{ name: "AWS_PROFILE", value: "temp" }],
      },
    ]);
    expect(parseProviderConfig(JSON.stringify(Bun.YAML.parse(yaml)), "c.json")).toEqual(p);
  });
  test("the kubelet's checks, each naming the file and field", () => {
    const bad = (text: string) => {
      try {
        parseProviderConfig(text, "/etc/k.yaml");
      } catch (e) {
        expect((e as { kind: string }).kind).toBe(ErrorKind.InvalidArgument);
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    expect(bad("apiVersion: v2\nkind: CredentialProviderConfig\nproviders: []")).toContain("/etc/k.yaml: apiVersion");
    expect(bad(yaml.replace("providers:", "providers: []\nx:"))).toContain("");
    expect(bad(yaml.replace('"12h"', "twelve"))).toContain("providers[0].defaultCacheDuration");
    expect(bad(yaml.replace("name: ecr-credential-provider", "name: ../bin/sh"))).toContain("providers[0].name");
    expect(bad(yaml.replace('matchImages: ["*.dkr.ecr.*.amazonaws.com", "127.0.0.1:5000"]', "matchImages: []"))).toContain("matchImages");
    expect(bad(yaml.replace("    apiVersion: credentialprovider.kubelet.k8s.io/v1", "    apiVersion: other/v1"))).toContain("providers[0].apiVersion");
    expect(bad("{")).toContain("not YAML or JSON");
  });
});

describe("plugin runs", () => {
  test("the request goes on stdin with args and env; the most specific matching key wins", async () => {
    answering("good", response({ "*.example.com": { username: "wide", password: "w" }, "reg.example.com/team": { username: "team", password: "t" } }));
    const p = provider("good", { args: ["arg1"], env: [{ name: "EXTRA", value: "from-env" }] });
    const k = new KubeletProviders({ providers: [p], binDir: dir, logger });
    expect(await k.lookup("reg.example.com/team/app:v1")).toEqual({ username: "team", password: "t" });
    expect(JSON.parse(readFileSync(join(dir, "good.req"), "utf8"))).toEqual({
      apiVersion: V1,
      kind: "CredentialProviderRequest",
      image: "reg.example.com/team/app:v1",
    });
    expect(readFileSync(join(dir, "good.env"), "utf8").trim()).toBe("from-env arg1");
    // Registry cache key: another image of the registry reuses the answer.
    expect(await k.lookup("reg.example.com/other:v1")).toEqual({ username: "wide", password: "w" });
    expect(runs("good")).toBe(1);
    // Not in matchImages: the plugin is not asked.
    expect(await k.lookup("reg.other.org/x")).toBeUndefined();
    expect(runs("good")).toBe(1);
  });

  test("cache keys Image and Global, cacheDuration over the default, and expiry", async () => {
    let now = 1_000_000;
    answering("img", response({ "*.example.com": { username: "u", password: "p" } }, { cacheKeyType: "Image", cacheDuration: "10s" }));
    answering("glob", response({ "*.example.com": { username: "u", password: "p" } }, { cacheKeyType: "Global" }));
    const k = new KubeletProviders({ providers: [provider("img")], binDir: dir, logger, now: () => now });
    await k.lookup("a.example.com/x");
    await k.lookup("a.example.com/x");
    await k.lookup("a.example.com/y");
    expect(runs("img")).toBe(2);
    now += 11_000;
    await k.lookup("a.example.com/x");
    expect(runs("img")).toBe(3);
    const g = new KubeletProviders({ providers: [provider("glob")], binDir: dir, logger, now: () => now });
    await g.lookup("a.example.com/x");
    await g.lookup("b.example.com/y");
    expect(runs("glob")).toBe(1);
    const none = new KubeletProviders({ providers: [provider("img", { defaultCacheMs: 0 })], binDir: dir, logger });
    answering("img", response({ "*.example.com": { username: "u", password: "p" } }, { cacheKeyType: "Image", cacheDuration: "0s" }));
    await none.lookup("a.example.com/x");
    await none.lookup("a.example.com/x");
    expect(runs("img")).toBe(5);
  });

  test("a failing plugin is named, its output (a secret) is not; the next provider is asked", async () => {
    plugin("leaky", 'echo "password=hunter2"; echo "hunter2" >&2; exit 3');
    plugin("slow", "sleep 5");
    plugin("huge", "yes hunter2 | head -c 3000000");
    plugin("wrongver", `cat >/dev/null; echo '${JSON.stringify({ ...response({}), apiVersion: "credentialprovider.kubelet.k8s.io/v1beta1" })}'`);
    plugin("badkey", `cat >/dev/null; echo '${JSON.stringify({ ...response({}), cacheKeyType: "Pod" })}'`);
    const limits = { timeoutMs: 300, maxOutput: 1 << 20 };
    const msg = async (name: string) => {
      try {
        await runPlugin(provider(name), dir, "a.example.com/x", limits);
      } catch (e) {
        expect((e as { kind: string }).kind).toBe(ErrorKind.Unauthenticated);
        expect((e as Error).message).not.toContain("hunter2");
        return (e as Error).message;
      }
      throw new Error("no failure");
    };
    expect(await msg("leaky")).toContain("credential provider plugin leaky (image a.example.com/x): exited with code 3");
    const t0 = Date.now();
    expect(await msg("slow")).toContain("no answer within 300 ms");
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await msg("huge")).toContain("more than 1048576 bytes");
    expect(await msg("wrongver")).toContain("apiVersion");
    expect(await msg("badkey")).toContain("cacheKeyType");
    expect(await msg("missing")).toContain("plugin missing");
    answering("fallback", response({ "*.example.com": { username: "f", password: "b" } }));
    const k = new KubeletProviders({ providers: [provider("leaky"), provider("fallback")], binDir: dir, logger });
    expect(await k.lookup("a.example.com/x")).toEqual({ username: "f", password: "b" });
  });
});
