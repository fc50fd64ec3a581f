// `rafsnap convert` against registries that are not plain and well-behaved (compiled binary):
// TLS with a CA made here, htpasswd auth with credentials from a docker config.json, a proxy
// that answers 500 three times and cuts blob bodies, and a config whose diff_id lies.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { type FlakyProxy, startFlakyProxy } from "../harness/flaky-proxy.ts";
import { pushDirImage } from "../harness/oci-image.ts";
import { makePki, type TestPki } from "../harness/pki.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";

/** A one-layer image with one file, pushed as `repo:tag`; `lie` corrupts the diff_id. */
async function pushImage(c: RegistryClient, repo: string, tag: string, dir: string, lie = false) {
  const tree = join(dir, `tree-${repo.replace("/", "-")}-${tag}`);
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, "hello.txt"), `hello from ${repo}\n`);
  await pushDirImage(c, repo, tag, tree, tree, lie);
}

describe("rafsnap convert against TLS, auth and faulty registries", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let pki: TestPki;
  const convert = (args: string[], env: Record<string, string> = {}) =>
    run([requireBinary(), "convert", ...args], { env: { PATH: SYSTEM_PATH, ...env }, timeoutMs: 60_000 });

  beforeAll(() => {
    dir = cleanup.tempDir("rafsnap-convert-reg-");
    pki = makePki(dir);
  });
  afterAll(() => cleanup.run());

  test("TLS with a CA the test made: refused without it, converted with --ca-cert", async () => {
    const reg: Registry = cleanup.add("tls", await startRegistry(join(dir, "tls"), { tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert } }));
    await pushImage(new RegistryClient(reg.host, { plainHttp: false, caCert: await Bun.file(pki.caCert).text() }), "app", "v1", dir);
    const untrusted = await convert(["--tls", "--source", `${reg.host}/app:v1`, "--target", `${reg.host}/app:v1-nydus`]);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toContain(`app:v1 from ${reg.host}`);
    expect(untrusted.stderr).toContain("certificate");
    const ok = await convert(["--ca-cert", pki.caCert, "--source", `${reg.host}/app:v1`, "--target", `${reg.host}/app:v1-nydus`]);
    expect(ok.stderr).toContain("layer 1/1");
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  test("htpasswd: credentials from a docker config.json; without them Unauthenticated", async () => {
    const reg: Registry = cleanup.add("auth", await startRegistry(join(dir, "auth"), { htpasswd: { user: "alice", password: "s3cret" } }));
    await pushImage(new RegistryClient(reg.host, { credentials: { username: "alice", password: "s3cret" } }), "app", "v1", dir);
    const anon = await convert(["--source", `${reg.host}/app:v1`, "--target", `${reg.host}/app:v1-nydus`], { DOCKER_CONFIG: join(dir, "none") });
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toContain("asks for credentials and none are configured");
    const cfgDir = join(dir, "docker");
    await run(["mkdir", "-p", cfgDir]);
    writeFileSync(join(cfgDir, "config.json"), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("alice:s3cret").toString("base64") } } }));
    const ok = await convert(["--source", `${reg.host}/app:v1`, "--target", `${reg.host}/app:v1-nydus`], { DOCKER_CONFIG: cfgDir });
    expect(ok.code).toBe(0);
    expect(anon.stderr).not.toContain("s3cret");
  });

  test("a registry that fails three times and cuts blob bodies: retried and resumed", async () => {
    const reg: Registry = cleanup.add("flaky", await startRegistry(join(dir, "flaky")));
    const proxy: FlakyProxy = startFlakyProxy(reg.url);
    cleanup.defer("proxy", () => proxy.stop());
    await pushImage(new RegistryClient(reg.host), "app", "v1", dir);
    proxy.fail500(3);
    proxy.cutBlobs(1);
    const ok = await convert(["--source", `${proxy.host}/app:v1`, "--target", `${proxy.host}/app:v1-nydus`]);
    expect(ok.stderr).toContain("layer 1/1");
    expect(ok.code).toBe(0);
  });

  test("a diff_id that does not match the layer: a clear error naming the layer, and no tag", async () => {
    const reg: Registry = cleanup.add("liar", await startRegistry(join(dir, "liar")));
    await pushImage(new RegistryClient(reg.host), "app", "v1", dir, true);
    const r = await convert(["--source", `${reg.host}/app:v1`, "--target", `${reg.host}/app:v1-nydus`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("layer 1/1");
    expect(r.stderr).toContain("diff_id");
    const tag = await fetch(`${reg.url}/v2/app/manifests/v1-nydus`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(tag.status).toBe(404);
  });
});
