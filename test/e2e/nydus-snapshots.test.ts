// Remote snapshots through the snapshots API alone, with the labels containerd's CRI unpacker
// sends (docs/compat.md §2–3): data layers are committed at once (AlreadyExists), the bootstrap
// layer is unpacked natively, a View of the top layer mounts the image, a View of a data layer
// is refused, a meta layer without an image reference gives an error saying which client to
// use, Usage counts the blob cache, and daemon_mode "none" answers nydus-overlayfs mounts with
// `extraoption`. Root only (mounts); the compiled binary, a registry on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { Cleanup } from "../harness/cleanup.ts";
import { HELLO } from "../harness/images.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { prepareNydusImage, recordedDaemonPids, serveNydus, type UnpackLayer, UnpackLabel, unpackNydus } from "../support/nydus-unpack.ts";
import { codeOf } from "../support/failure.ts";
import type { RafsnapServer } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;

/** The memory cgroup tree the daemons' cgroup can be made in, or undefined (none writable). */
function memoryCgroupDir(): string | undefined {
  const v2 = existsSync("/sys/fs/cgroup/cgroup.controllers") && readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8").includes("memory");
  const tree = v2 ? "/sys/fs/cgroup" : existsSync("/sys/fs/cgroup/memory/memory.limit_in_bytes") ? "/sys/fs/cgroup/memory" : undefined;
  if (!tree) return undefined;
  try {
    mkdirSync(join(tree, "system.slice", "nydusd"), { recursive: true });
    return tree;
  } catch {
    return undefined;
  }
}
const L = UnpackLabel;
type Layer = UnpackLayer;

describe.skipIf(!isRoot)("remote snapshots through the snapshots API", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let reg: Registry;
  let image = "";
  let layers: Layer[] = [];
  let bootTgz = "";

  const serve = (name: string, toml: string) => serveNydus(cleanup, dir, name, toml);

  /** Unpacks the image as containerd's CRI unpacker would, labels included; returns the top chain name. */
  function unpack(s: RafsnapServer, prefix: string, withImageRef = true): Promise<string> {
    const fillBoot = async (upper: string) => {
      expect((await run(["tar", "-xzf", bootTgz, "-C", upper])).code).toBe(0);
    };
    return unpackNydus(s.client, layers, { prefix, imageRef: withImageRef ? image : undefined, fillBoot });
  }

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-remote-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    ({ image, layers, bootTgz } = await prepareNydusImage(dir, reg));
  }, 120_000);
  afterAll(() => cleanup.run());

  test("the image's layers carry the nydus annotations containerd passes as labels", () => {
    expect(layers.length).toBeGreaterThan(1);
    expect(layers.slice(0, -1).every((l) => L.blob in l.annotations)).toBe(true);
    expect(L.boot in (layers.at(-1)?.annotations ?? {})).toBe(true);
  });

  test("dedicated: data layers skipped, a View of the top mounts the image, data-layer View refused, Usage counts the cache", async () => {
    const s = await serve("dedicated", 'daemon_mode = "dedicated"');
    // The unit runs rafsnap with OOMScoreAdjust=-999; its daemons must not inherit its value.
    // (-999 needs CAP_SYS_RESOURCE, which a test container may lack; any other value shows it.)
    writeFileSync(`/proc/${s.proc.pid}/oom_score_adj`, "500");
    const top = await unpack(s, "a");
    const view = await s.client.view({ key: "a-view", parent: top });
    const pids = recordedDaemonPids(s.root);
    expect(pids.length).toBe(1);
    for (const pid of pids) expect(readFileSync(`/proc/${pid}/oom_score_adj`, "utf8").trim()).toBe("0");
    // A memory limit by default where the node's cgroups allow one: system.slice/nydusd in the
    // memory controller's tree (cgroup v1 here; v2 puts it in the unified tree), a quarter of
    // the node's memory.
    const cg = memoryCgroupDir();
    if (cg) {
      for (const pid of pids) expect(readFileSync(`/proc/${pid}/cgroup`, "utf8")).toMatch(/:memory:\/system\.slice\/nydusd$|^0::\/system\.slice\/nydusd$/m);
      const limit = Number(readFileSync(join(cg, "system.slice", "nydusd", cg.endsWith("memory") ? "memory.limit_in_bytes" : "memory.max"), "utf8"));
      const total = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]) * 1024;
      expect(Math.abs(limit - total / 4)).toBeLessThan(8192); // the kernel rounds to pages
    } else {
      expect(readFileSync(join(dir, "dedicated", "rafsnap.log"), "utf8")).toContain("daemons run without a memory limit");
    }
    const m = view.mounts[0];
    expect(m?.type).toBe("overlay");
    const lower = (m?.options.find((o) => o.startsWith("lowerdir=")) ?? "").slice(9).split(":");
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
