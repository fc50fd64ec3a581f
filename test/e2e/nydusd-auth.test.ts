// `rafsnap nydusd` against a registry with basic auth: credentials from the config's `auth`,
// replaced at run time with `PUT /api/v1/config` (`registry_auth`), as the snapshotter's
// credential renewal does. Wrong credentials make uncached reads fail (EIO) and never show
// up in the daemon's log. Root only (FUSE, EROFS).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { noise, pushDirImage } from "../harness/oci-image.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { convertAndFetchBootstrap, startNydusd } from "../support/nydusd.ts";

const isRoot = process.getuid?.() === 0;
const b64 = (s: string) => Buffer.from(s).toString("base64");

describe.skipIf(!isRoot)("nydusd: registry credentials, replaced at run time", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let boot = "";

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-nydusd-auth-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry"), { htpasswd: { user: "alice", password: "s3cret" } }));
    const tree = join(dir, "tree");
    mkdirSync(tree);
    // Two files far apart in the blob (tar order is by name; `m` is never read and is larger
    // than the read-ahead), so reading the second needs fetches of its own.
    writeFileSync(join(tree, "a"), noise(3 << 20, 1));
    writeFileSync(join(tree, "m"), noise(12 << 20, 3));
    writeFileSync(join(tree, "z"), noise(3 << 20, 2));
    const client = new RegistryClient(reg.host, { credentials: { username: "alice", password: "s3cret" } });
    await pushDirImage(client, "app", "oci", tree, join(dir, "layer"));
    const cfgDir = join(dir, "docker");
    mkdirSync(cfgDir);
    writeFileSync(join(cfgDir, "config.json"), JSON.stringify({ auths: { [reg.host]: { auth: b64("alice:s3cret") } } }));
    boot = (await convertAndFetchBootstrap(client, "app", "oci", "nydus", dir, { DOCKER_CONFIG: cfgDir })).boot;
  }, 120_000);
  afterAll(() => cleanup.run());

  test("reads with the configured auth; a wrong registry_auth fails reads; the right one fixes them", async () => {
    const config = {
      device: {
        backend: { type: "registry", config: { host: reg.host, repo: "app", scheme: "http", auth: b64("alice:s3cret") } },
        cache: { type: "blobcache", config: { work_dir: join(dir, "cache") } },
      },
      digest_validate: true,
    };
    const nd = await startNydusd(dir, "auth", config, { bootstrap: boot, onStart: (p) => cleanup.add("nydusd", p) });
    const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
    const a = await run(["sha256sum", join(nd.mnt, "a")]);
    expect(a.stdout.split(" ")[0]).toBe(sha(noise(3 << 20, 1)));

    const wrong = await nd.api("PUT", "/api/v1/config?id=/", { registry_auth: b64("alice:not-the-password") });
    expect(wrong.status).toBe(204);
    const failed = await run(["cat", join(nd.mnt, "z")]);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain("Input/output error");

    const right = await nd.api("PUT", "/api/v1/config", { registry_auth: b64("alice:s3cret") });
    expect(right.status).toBe(204);
    const b = await run(["sha256sum", join(nd.mnt, "z")]);
    expect(b.stdout.split(" ")[0]).toBe(sha(noise(3 << 20, 2)));

    const bad = await nd.api("PUT", "/api/v1/config", { something: 1 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain("registry_auth");
    const log = readFileSync(nd.proc.logFile, "utf8");
    expect(log).not.toContain("s3cret");
    expect(log).not.toContain("not-the-password");
    expect(log).not.toContain(b64("alice:s3cret"));
  }, 120_000);
});
