// The OCI distribution client against real docker-registry instances on 127.0.0.1: plain
// HTTP, TLS with a CA made here, htpasswd (basic) auth, bearer-token auth, and a proxy that
// fails requests or cuts blob bodies.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorKind } from "../../src/errdefs/index.ts";
import { credentialsFromDockerConfig, RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { failure } from "../support/failure.ts";
import { type FlakyProxy, startFlakyProxy } from "../harness/flaky-proxy.ts";
import { makePki, type TestPki } from "../harness/pki.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { startTokenServer, type TokenServer } from "../harness/token-server.ts";

const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** Pushes a config blob, a layer blob and a manifest; returns their digests. */
async function pushImage(c: RegistryClient, repo: string, tag: string) {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const layer = crypto.getRandomValues(new Uint8Array(300_000));
  await c.pushBlob(repo, sha(config), config);
  // stream upload in 64 KiB chunks
  async function* chunks() {
    for (let i = 0; i < layer.length; i += 65536) yield layer.subarray(i, i + 65536);
  }
  expect(await c.pushBlob(repo, sha(layer), chunks())).toBe(true);
  expect(await c.pushBlob(repo, sha(layer), layer)).toBe(false); // already there
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.length }],
    }),
  );
  const digest = await c.putManifest(repo, tag, MANIFEST, manifest);
  expect(digest).toBe(sha(manifest));
  return { config, layer, manifest, digest };
}

describe("registry client", () => {
  const cleanup = new Cleanup();
  let dir: string;
  let pki: TestPki;
  let plain: Registry;
  let proxy: FlakyProxy;

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-registry-");
    pki = makePki(dir);
    plain = cleanup.add("registry", await startRegistry(join(dir, "plain")));
    proxy = startFlakyProxy(plain.url);
    cleanup.defer("proxy", () => proxy.stop());
  });
  afterAll(() => cleanup.run());

  test("plain HTTP: push blobs (whole and chunked) and a manifest, read them back, ranges", async () => {
    const c = new RegistryClient(plain.host);
    expect(c.base).toStartWith("http://"); // loopback: plain HTTP without being asked
    const img = await pushImage(c, "app/one", "v1");
    const m = await c.getManifest("app/one", "v1");
    expect(m.mediaType).toBe(MANIFEST);
    expect(m.digest).toBe(img.digest);
    expect(Buffer.from(m.bytes).equals(Buffer.from(img.manifest))).toBe(true);
    expect((await c.getManifest("app/one", img.digest)).digest).toBe(img.digest);
    expect(await c.blobSize("app/one", sha(img.layer))).toBe(img.layer.length);
    expect(Buffer.from(await c.readBlob("app/one", sha(img.layer))).equals(Buffer.from(img.layer))).toBe(true);
    const part: Uint8Array[] = [];
    for await (const x of c.blobStream("app/one", sha(img.layer), 1000, 5000)) part.push(x);
    expect(Buffer.from(Buffer.concat(part)).equals(Buffer.from(img.layer.subarray(1000, 5000)))).toBe(true);
  });

  test("errors name the repository and digest and carry the right kind", async () => {
    const c = new RegistryClient(plain.host);
    const missing = await failure(c.getManifest("app/none", "v9"));
    expect(missing.kind).toBe(ErrorKind.NotFound);
    expect(missing.message).toContain("app/none:v9");
    const d = `sha256:${"0".repeat(64)}`;
    expect(await c.blobSize("app/one", d)).toBeNull();
    const blob = await failure(c.readBlob("app/one", d));
    expect(blob.kind).toBe(ErrorKind.NotFound);
    expect(blob.message).toContain(d);
    const wrong = new Uint8Array([1, 2, 3]);
    const bad = await failure(c.pushBlob("app/one", sha(new Uint8Array([9])), wrong));
    expect(bad.kind).toBe(ErrorKind.InvalidArgument);
    expect(bad.message).toContain("DIGEST_INVALID");
  });

  test("retries: 500 three times then success; a body cut mid-blob is resumed", async () => {
    const c = new RegistryClient(proxy.host, { retries: 3 });
    const img = await pushImage(new RegistryClient(plain.host), "app/flaky", "v1");
    proxy.fail500(3);
    expect((await c.getManifest("app/flaky", "v1")).digest).toBe(img.digest);
    proxy.cutBlobs(2);
    const got = await c.readBlob("app/flaky", sha(img.layer));
    expect(Buffer.from(got).equals(Buffer.from(img.layer))).toBe(true);
    expect(proxy.seen().filter((s) => s.includes("/blobs/")).length).toBeGreaterThanOrEqual(3);
    proxy.fail500(10);
    const down = await failure(new RegistryClient(proxy.host, { retries: 2 }).getManifest("app/flaky", "v1"));
    expect(down.kind).toBe(ErrorKind.Unavailable);
    expect(down.message).toContain("HTTP 500");
    proxy.fail500(0);
  });

  test("TLS with a custom CA; refused without it; skip-verify when asked", async () => {
    const reg = cleanup.add("tls registry", await startRegistry(join(dir, "tls"), { tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert } }));
    const ca = readFileSync(pki.caCert, "utf8");
    // plainHttp: false — TLS although the test registry is on loopback
    const secure = new RegistryClient(reg.host, { caCert: ca, plainHttp: false });
    expect(secure.base).toStartWith("https://");
    await pushImage(secure, "app/tls", "v1");
    expect((await secure.getManifest("app/tls", "v1")).mediaType).toBe(MANIFEST);
    const untrusted = await failure(new RegistryClient(reg.host, { plainHttp: false, retries: 0 }).getManifest("app/tls", "v1"));
    expect(untrusted.kind).toBe(ErrorKind.Unavailable);
    const skip = new RegistryClient(reg.host, { plainHttp: false, skipVerify: true });
    expect((await skip.getManifest("app/tls", "v1")).mediaType).toBe(MANIFEST);
  });

  test("htpasswd (basic) auth: with, without and with wrong credentials", async () => {
    const reg = cleanup.add("auth registry", await startRegistry(join(dir, "basic"), { htpasswd: { user: "alice", password: "s3cret" } }));
    const ok = new RegistryClient(reg.host, { credentials: { username: "alice", password: "s3cret" } });
    await pushImage(ok, "app/basic", "v1");
    const anon = await failure(new RegistryClient(reg.host).getManifest("app/basic", "v1"));
    expect(anon.kind).toBe(ErrorKind.Unauthenticated);
    expect(anon.message).toContain("app/basic:v1");
    const wrong = await failure(new RegistryClient(reg.host, { credentials: { username: "alice", password: "nope" } }).getManifest("app/basic", "v1"));
    expect(wrong.kind).toBe(ErrorKind.Unauthenticated);
    expect(wrong.message).not.toContain("nope");
  });

  test("bearer tokens: anonymous pull, authenticated push, tokens cached per scope", async () => {
    const tokens: TokenServer = startTokenServer({ cert: pki.caCert, key: pki.caKey }, { name: "bob", password: "pw" });
    cleanup.defer("token server", () => tokens.stop());
    const reg = cleanup.add(
      "token registry",
      await startRegistry(join(dir, "token"), {
        token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCert: pki.caCert },
      }),
    );
    const bob = new RegistryClient(reg.host, { credentials: { username: "bob", password: "pw" } });
    const img = await pushImage(bob, "app/token", "v1");
    const before = tokens.issued();
    await bob.getManifest("app/token", "v1");
    await bob.getManifest("app/token", img.digest);
    expect(tokens.issued() - before).toBeLessThanOrEqual(1); // the pull token is reused
    const anon = new RegistryClient(reg.host);
    expect((await anon.getManifest("app/token", "v1")).digest).toBe(img.digest);
    const denied = await failure(anon.pushBlob("app/token", sha(new Uint8Array([7])), new Uint8Array([7])));
    expect(denied.kind).toBe(ErrorKind.Unauthenticated);
  });

  test("a bearer token given as it is (nydusd's registry_token) is sent; replaced with setAuth", async () => {
    const tokens: TokenServer = startTokenServer({ cert: pki.caCert, key: pki.caKey }, { name: "bob", password: "pw" });
    cleanup.defer("token server 2", () => tokens.stop());
    const reg = cleanup.add(
      "token registry 2",
      await startRegistry(join(dir, "token2"), {
        token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCert: pki.caCert },
      }),
    );
    const scope = "repository:app/raw:pull,push";
    const res = await fetch(`${tokens.realm}?service=${tokens.service}&scope=${encodeURIComponent(scope)}`, {
      headers: { authorization: `Basic ${Buffer.from("bob:pw").toString("base64")}` },
    });
    const { token } = (await res.json()) as { token: string };
    const blob = new Uint8Array([1, 2, 3]);
    const anon = new RegistryClient(reg.host);
    expect((await failure(anon.pushBlob("app/raw", sha(blob), blob))).kind).toBe(ErrorKind.Unauthenticated);
    const withToken = new RegistryClient(reg.host, { bearerToken: token });
    expect(await withToken.pushBlob("app/raw", sha(blob), blob)).toBe(true);
    anon.setAuth({ bearerToken: token });
    const other = new Uint8Array([4, 5]);
    expect(await anon.pushBlob("app/raw", sha(other), other)).toBe(true);
  });

  test("credentials from a docker config.json", () => {
    const file = join(dir, "docker-config.json");
    writeFileSync(
      file,
      JSON.stringify({
        auths: {
          "127.0.0.1:5000": { auth: Buffer.from("carol:p:w").toString("base64") },
          "https://index.docker.io/v1/": { username: "dave", password: "x" },
          "reg.example": { identitytoken: "tok" },
        },
      }),
    );
    expect(credentialsFromDockerConfig("127.0.0.1:5000", file)).toEqual({ username: "carol", password: "p:w" });
    expect(credentialsFromDockerConfig("docker.io", file)).toEqual({ username: "dave", password: "x" });
    expect(credentialsFromDockerConfig("reg.example", file)).toEqual({ identityToken: "tok" });
    expect(credentialsFromDockerConfig("other", file)).toBeUndefined();
    expect(credentialsFromDockerConfig("x", join(dir, "missing.json"))).toBeUndefined();
  });
});
