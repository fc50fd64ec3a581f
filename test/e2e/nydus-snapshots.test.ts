// Remote snapshots through the snapshots API alone, with the labels containerd's CRI unpacker
// sends (nydus-facts §2–3): data layers are committed at once (AlreadyExists), the bootstrap
// layer is unpacked natively, a View of the top layer mounts the image, a View of a data layer
// is refused, a meta layer without an image reference gives an error saying which client to
// use, Usage counts the blob cache, and daemon_mode "none" answers nydus-overlayfs mounts with
// `extraoption`. Root only (mounts); the compiled binary, a registry on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { BUILD_IMAGES, HELLO } from "../harness/images.ts";
import { isAlive, run, stopPid } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { requireBinary } from "../support/binary.ts";
import { rafsnapCli, type RafsnapServer, startRafsnap } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
const L = {
  ref: "containerd.io/snapshot.ref",
  imageRef: "containerd.io/snapshot/cri.image-ref",
  layerDigest: "containerd.io/snapshot/cri.layer-digest",
  blob: "containerd.io/snapshot/nydus-blob",
  boot: "containerd.io/snapshot/nydus-bootstrap",
};

interface Layer {
  digest: string;
  annotations: Record<string, string>;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code | undefined; message: string }> {
  try {
    await p;
    return { code: undefined, message: "" };
  } catch (e) {
    return { code: e instanceof ConnectError ? e.code : undefined, message: String(e) };
  }
}

describe.skipIf(!isRoot)("remote snapshots through the snapshots API", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let image = "";
  let layers: Layer[] = [];
  let bootTgz = "";

  async function serve(name: string, toml: string): Promise<RafsnapServer> {
    const d = join(dir, name);
    mkdirSync(d);
    symlinkSync(requireBinary(), join(d, "nydusd"));
    writeFileSync(join(d, "config.toml"), `version = 1\n${toml}\n[daemon]\nnydusd_path = ${JSON.stringify(join(d, "nydusd"))}\n`);
    const s = await startRafsnap(d, { args: ["--config", join(d, "config.toml")] });
    // Daemons outlive rafsnap by design: stop the ones it recorded, after it.
    cleanup.defer(`${name} daemons`, async () => {
      const { Database } = await import("bun:sqlite");
      const db = new Database(join(s.root, "rafsnap.db"), { readonly: true });
      const pids = db.query("SELECT pid FROM daemons").all() as { pid: number }[];
      db.close();
      for (const { pid } of pids) if (isAlive(pid)) await stopPid(pid);
    });
    cleanup.add(name, s);
    return s;
  }

  /** Unpacks the image as containerd's CRI unpacker would, labels included; returns the top chain name. */
  async function unpack(s: RafsnapServer, prefix: string, withImageRef = true): Promise<string> {
    const c = s.client;
    let parent = "";
    for (const [i, l] of layers.entries()) {
      const name = `${prefix}-chain-${i}`;
      const labels: Record<string, string> = { [L.ref]: name, [L.layerDigest]: l.digest, ...l.annotations };
      if (withImageRef) labels[L.imageRef] = image;
      if (L.blob in l.annotations) {
        const r = await codeOf(c.prepare({ key: `${prefix}-extract-${i}`, parent, labels }));
        expect(r.code).toBe(Code.AlreadyExists);
        expect(r.message).toContain(name);
      } else {
        const res = await c.prepare({ key: `${prefix}-extract-${i}`, parent, labels });
        const m = res.mounts[0];
        const upper = m?.type === "bind" ? m.source : (m?.options.find((o) => o.startsWith("upperdir="))?.slice(9) as string);
        expect((await run(["tar", "-xzf", bootTgz, "-C", upper])).code).toBe(0);
        await c.commit({ name, key: `${prefix}-extract-${i}`, labels });
      }
      expect((await c.stat({ key: name })).info?.kind).toBe(3); // committed
      parent = name;
    }
    return parent;
  }

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-remote-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const b = await run(["bash", BUILD_IMAGES, join(dir, "img"), reg.host], { timeoutMs: 60_000 });
    if (b.code !== 0) throw new Error(b.stderr);
    image = `${reg.host}/multi:nydus`;
    const conv = await rafsnapCli(["convert", "--source", `${reg.host}/multi:v1`, "--target", image]);
    if (conv.code !== 0) throw new Error(conv.stderr);
    const c = new RegistryClient(reg.host);
    const m = JSON.parse(new TextDecoder().decode((await c.getManifest("multi", "nydus")).bytes)) as { layers: Layer[] };
    layers = m.layers.map((l) => ({ digest: l.digest, annotations: l.annotations ?? {} }));
    bootTgz = join(dir, "boot.tgz");
    writeFileSync(bootTgz, await c.readBlob("multi", layers.at(-1)?.digest as string));
  }, 120_000);
  afterAll(() => cleanup.run());

  test("the image's layers carry the nydus annotations containerd passes as labels", () => {
    expect(layers.length).toBeGreaterThan(1);
    expect(layers.slice(0, -1).every((l) => L.blob in l.annotations)).toBe(true);
    expect(L.boot in (layers.at(-1)?.annotations ?? {})).toBe(true);
  });

  test("dedicated: data layers skipped, a View of the top mounts the image, data-layer View refused, Usage counts the cache", async () => {
    const s = await serve("dedicated", 'daemon_mode = "dedicated"');
    const top = await unpack(s, "a");
    const view = await s.client.view({ key: "a-view", parent: top });
    const m = view.mounts[0];
    expect(m?.type).toBe("overlay");
    const lower = (m?.options.find((o) => o.startsWith("lowerdir=")) as string).slice(9).split(":");
    expect(lower.length).toBe(2);
    expect(lower[0]).toMatch(/\/snapshots\/\d+\/mnt$/);
    expect(readFileSync(join(lower[0] as string, "data/hello"), "utf8").trim()).toBe(HELLO);
    // Mounts of the view answers the same.
    expect((await s.client.mounts({ key: "a-view" })).mounts[0]?.options).toEqual(m?.options as string[]);
    const refused = await codeOf(s.client.view({ key: "a-view-data", parent: "a-chain-0" }));
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.message).toContain("only can view nydus topmost layer");
    // The blob cache of the layer holding /data/hello counts in its Usage.
    const usages = await Promise.all(layers.slice(0, -1).map((_, i) => s.client.usage({ key: `a-chain-${i}` })));
    expect(usages.some((u) => Number(u.size) > 0)).toBe(true);
    // Removing the view and the image's snapshots unmounts it and stops its daemon.
    await s.client.remove({ key: "a-view" });
    for (let i = layers.length - 1; i >= 0; i--) await s.client.remove({ key: `a-chain-${i}` });
    await s.client.cleanup({});
    const { Database } = await import("bun:sqlite");
    const db = new Database(join(s.root, "rafsnap.db"), { readonly: true });
    expect(db.query("SELECT count(*) AS n FROM daemons").get()).toEqual({ n: 0 });
    db.close();
  }, 120_000);

  test("a nydus image without an image reference: the container Prepare fails saying what to use, and leaves nothing", async () => {
    const s = await serve("noref", 'daemon_mode = "dedicated"');
    const top = await unpack(s, "b", false);
    const r = await codeOf(s.client.prepare({ key: "b-container", parent: top }));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.message).toContain("cri.image-ref");
    expect(r.message).toContain("disable_snapshot_annotations");
    expect((await codeOf(s.client.stat({ key: "b-container" }))).code).toBe(Code.NotFound);
  }, 120_000);

  test('daemon_mode "none": no daemon, fuse.nydus-overlayfs mounts with extraoption', async () => {
    const s = await serve("none", 'daemon_mode = "none"');
    const top = await unpack(s, "c");
    const res = await s.client.prepare({ key: "c-container", parent: top });
    const m = res.mounts[0];
    expect(m?.type).toBe("fuse.nydus-overlayfs");
    const extra = m?.options.find((o) => o.startsWith("extraoption=")) as string;
    const json = JSON.parse(Buffer.from(extra.slice(12), "base64").toString()) as { source: string; config: string; snapshotdir: string; fs_version: string };
    expect(json.fs_version).toBe("v6");
    expect(json.source).toMatch(/\/fs\/image\/image\.boot$/);
    expect(JSON.parse(json.config).device.backend.config.repo).toBe("multi");
    expect(json.snapshotdir).toMatch(/\/snapshots\/\d+$/);
    expect(m?.options.some((o) => o.startsWith("upperdir="))).toBe(true);
    const { Database } = await import("bun:sqlite");
    const db = new Database(join(s.root, "rafsnap.db"), { readonly: true });
    expect(db.query("SELECT count(*) AS n FROM daemons").get()).toEqual({ n: 0 });
    db.close();
  }, 120_000);
});
