// Kubelet credential provider plugins and credential renewal, end to end: a private registry
// whose token service accepts only short-lived passwords (valid 6 s, as cloud registries'
// tokens expire), an exec plugin written here that mints them, and `rafsnap serve` with
// managed daemons reading a nydus image lazily. With renewal on, cold reads keep working
// across several password expiries; with it off, they fail once the daemon must
// authenticate again. No password reaches a log. Root only (FUSE, mounts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { noise, pushDirImage } from "../harness/oci-image.ts";
import { makePki } from "../harness/pki.ts";
import { freePort, run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { startTokenServer, type TokenServer } from "../harness/token-server.ts";
import { serveNydus, type UnpackLayer, unpackNydus } from "../support/nydus-unpack.ts";
import { rafsnapCli, type RafsnapServer } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
const LIFETIME_S = 6;
const FILES = 4;
const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const fileData = (i: number) => noise(2 << 20, 100 + i);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every file under `dir` (recursively) except the daemons' 0600 config files, which must hold the secret. */
function logText(dir: string): string {
  let out = "";
  for (const n of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, n);
    if (n.endsWith("config.json") || n.includes("cache") || !statSync(p).isFile() || statSync(p).size > 20 << 20) continue;
    if (/\.(log|toml)$/.test(n) || n.includes("log")) out += readFileSync(p, "latin1");
  }
  return out;
}

describe.skipIf(!isRoot)("kubelet credential providers and renewal, with expiring credentials", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let tokens: TokenServer;
  let image = "";
  let layers: UnpackLayer[] = [];
  let bootTgz = "";
  const refused: string[] = [];

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-creds-");
    // The image: files far apart (fillers larger than the read-ahead between them), so every
    // file read later is a cold read of its own.
    const tree = join(dir, "tree");
    mkdirSync(tree);
    for (let i = 0; i < FILES; i++) {
      writeFileSync(join(tree, `f${i}`), fileData(i));
      writeFileSync(join(tree, `f${i}-pad`), noise(12 << 20, 200 + i));
    }
    const open = await startRegistry(join(dir, "registry"));
    try {
      await pushDirImage(new RegistryClient(open.host), "app", "v1", tree, join(dir, "layer"));
      const conv = await rafsnapCli(["convert", "--source", `${open.host}/app:v1`, "--target", `${open.host}/app:nydus`]);
      if (conv.code !== 0) throw new Error(conv.stderr);
      const c = new RegistryClient(open.host);
      const m = JSON.parse(new TextDecoder().decode((await c.getManifest("app", "nydus")).bytes)) as { layers: UnpackLayer[] };
      layers = m.layers.map((l) => ({ digest: l.digest, annotations: l.annotations ?? {} }));
      bootTgz = join(dir, "boot.tgz");
      writeFileSync(bootTgz, await c.readBlob("app", layers.at(-1)?.digest as string));
    } finally {
      await open.stop();
    }
    // The same storage, now private: passwords are "tok-<unix seconds>", valid LIFETIME_S.
    const pki = makePki(dir);
    tokens = startTokenServer(
      { cert: pki.caCert, key: pki.caKey },
      { name: "alice", password: "" },
      {
        ttlSeconds: 2,
        anonymousPull: false,
        accepts: (name, password) => {
          const t = Number(/^tok-(\d+)$/.exec(password)?.[1]);
          const ok = name === "alice" && Number.isFinite(t) && Date.now() / 1000 - t <= LIFETIME_S;
          if (!ok) refused.push(password);
          return ok;
        },
      },
    );
    cleanup.defer("token server", () => tokens.stop());
    reg = cleanup.add(
      "registry",
      await startRegistry(join(dir, "registry"), { token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCert: pki.caCert } }),
    );
    image = `${reg.host}/app:nydus`;
    // The plugin: records each request, answers a fresh password for this registry.
    const bin = join(dir, "plugins");
    mkdirSync(bin);
    writeFileSync(
      join(bin, "test-provider"),
      `#!/bin/sh
cat >> "$LOG_DIR/requests"
echo >> "$LOG_DIR/requests"
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"1s","auth":{"%s":{"username":"alice","password":"tok-%s"}}}' "$REGISTRY" "$(date +%s)"
`,
    );
    chmodSync(join(bin, "test-provider"), 0o755);
    writeFileSync(
      join(dir, "providers.yaml"),
      `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: test-provider
    matchImages: ["127.0.0.1:${reg.host.split(":")[1]}"]
    defaultCacheDuration: "1s"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    env:
      - {name: LOG_DIR, value: "${dir}"}
      - {name: REGISTRY, value: "${reg.host}"}
`,
    );
  }, 180_000);
  afterAll(() => cleanup.run());

  const authToml = (renewal: string) => `[remote.auth]
enable_kubelet_credential_providers = true
credential_provider_config = ${JSON.stringify(join(dir, "providers.yaml"))}
credential_provider_bin_dir = ${JSON.stringify(join(dir, "plugins"))}
credential_renewal_interval = "${renewal}"`;

  /** Unpacks the image in `s` and mounts a View; returns the image's root directory. */
  async function mountImage(s: RafsnapServer, prefix: string): Promise<string> {
    const fillBoot = async (upper: string) => {
      expect((await run(["tar", "-xzf", bootTgz, "-C", upper])).code).toBe(0);
    };
    const top = await unpackNydus(s.client, layers, { prefix, imageRef: image, fillBoot });
    const view = await s.client.view({ key: `${prefix}-view`, parent: top });
    const m = view.mounts[0];
    const lower = m?.type === "bind" ? [m.source] : (m?.options.find((o) => o.startsWith("lowerdir=")) ?? "").slice(9).split(":");
    return lower[0] as string;
  }

  const readSha = async (root: string, i: number) => {
    const r = await run(["sha256sum", join(root, `f${i}`)], { timeoutMs: 60_000 });
    return r.code === 0 ? r.stdout.split(" ")[0] : `failed: ${r.stderr.trim()}`;
  };

  test("renewal keeps cold reads working across password expiries; without it they fail", async () => {
    const metricsPort = await freePort();
    const renewing = await serveNydus(cleanup, dir, "renewing", `daemon_mode = "shared"\n[metrics]\naddress = "127.0.0.1:${metricsPort}"\n${authToml("1s")}`);
    const fixed = await serveNydus(cleanup, dir, "fixed", `daemon_mode = "dedicated"\n${authToml("0s")}`);
    const rootA = await mountImage(renewing, "a");
    const rootB = await mountImage(fixed, "b");
    const t0 = Date.now();
    expect(await readSha(rootA, 0)).toBe(sha(fileData(0)));
    expect(await readSha(rootB, 0)).toBe(sha(fileData(0)));
    const req = JSON.parse(readFileSync(join(dir, "requests"), "utf8").split("\n")[0] as string);
    expect(req).toEqual({ apiVersion: "credentialprovider.kubelet.k8s.io/v1", kind: "CredentialProviderRequest", image });
    // Each later read comes after at least one more password lifetime.
    for (let i = 1; i < FILES - 1; i++) {
      await sleep(LIFETIME_S * 1000 + 1500);
      expect(`f${i}: ${await readSha(rootA, i)}`).toBe(`f${i}: ${sha(fileData(i))}`);
    }
    // The daemon without renewal must authenticate again once its registry token is stale
    // (the client keeps one at least 20 s); by then its password expired long ago.
    await sleep(Math.max(0, 22_000 - (Date.now() - t0)));
    expect(await readSha(rootB, FILES - 1)).toContain("failed");
    expect(await readSha(rootA, FILES - 1)).toBe(sha(fileData(FILES - 1)));
    expect(refused.length).toBeGreaterThan(0);
    const logA = readFileSync(join(dir, "renewing", "rafsnap.log"), "utf8");
    expect(logA.match(/renewed the registry credentials of/g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(readFileSync(join(dir, "fixed", "rafsnap.log"), "utf8")).not.toContain("renewed the registry credentials");
    // The rounds count into nydus-snapshotter's credential metrics.
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/v1/metrics`)).text();
    const renewals = Number(
      new RegExp(`^snapshotter_credential_renewals_total\\{image_ref="${image}",result="success"\\} (\\d+)$`, "m").exec(scraped)?.[1] ?? 0,
    );
    expect(renewals).toBeGreaterThanOrEqual(3);
    expect(scraped).toContain(`snapshotter_credential_store_entries{image_ref="${image}"} 1`);
    // Secrets stay out of every log; the daemon configs that hold them are 0600.
    const logs = logText(dir);
    for (const p of ["tok-1", "tok-2", Buffer.from("alice:tok-").toString("base64").slice(0, 12)]) expect(logs).not.toContain(p);
    for (const root of [renewing.root, fixed.root]) {
      for (const n of readdirSync(root, { recursive: true }) as string[]) {
        if (n.endsWith("config.json") && readFileSync(join(root, n), "utf8").includes('"auth"')) expect(statSync(join(root, n)).mode & 0o777).toBe(0o600);
      }
    }
  }, 240_000);
});
