// The snapshotter's remote-snapshot logic without root: a real SQLite store and real
// directories, with the nydus side played by a fake RemoteFs (test/fakes/remote-fs.ts). The
// same paths run for real, mounts and daemons included, in test/e2e/nydus-snapshots.test.ts.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorKind } from "../errdefs/index.ts";
import { Label } from "../labels/index.ts";
import { silentLogger } from "../log/index.ts";
import { MetaStore, openDb, systemClock } from "../store/index.ts";
import { type FakeRemoteFs, daemonDown, fakeRemoteFs } from "../../test/fakes/remote-fs.ts";
import { failure } from "../../test/support/failure.ts";
import type { Mount } from "./mounts.ts";
import { Snapshotter } from "./snapshotter.ts";

const BLOB1 = `sha256:${"1".repeat(64)}`;
const BLOB2 = `sha256:${"2".repeat(64)}`;
const IMAGE = "registry.test/app:1";

let dir: string;
let store: MetaStore;
let remote: FakeRemoteFs;
let sn: Snapshotter;

async function open(opts: { daemonless?: boolean; nydusOverlayfs?: boolean } = {}) {
  remote = fakeRemoteFs({ daemonless: opts.daemonless });
  sn = await Snapshotter.open({
    root: dir,
    store,
    logger: silentLogger(),
    remote,
    remoteStyle: opts.nydusOverlayfs ? { nydusOverlayfs: true, overlayfsPath: "" } : undefined,
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-sn-"));
  store = new MetaStore(openDb(join(dir, "rafsnap.db")), systemClock());
  await open();
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Labels containerd's CRI unpacker sends when extracting layer `target` of a nydus image. */
const dataLayer = (target: string, digest: string) => ({
  [Label.TargetSnapshotRef]: target,
  [Label.NydusDataLayer]: "true",
  [Label.CRILayerDigest]: digest,
  [Label.CRIImageRef]: IMAGE,
});

/**
 * Unpacks a two-blob nydus image the way containerd does: two data layers (skipped: the
 * snapshotter commits them and answers AlreadyExists), then the bootstrap layer (unpacked
 * natively and committed). Returns the top chain name.
 */
async function unpackImage(withRef = true): Promise<string> {
  for (const [i, [target, digest]] of [
    ["chain-0", BLOB1],
    ["chain-1", BLOB2],
  ].entries()) {
    const parent = i === 0 ? "" : "chain-0";
    const f = await failure(sn.prepare(`extract-${i}`, parent, dataLayer(target as string, digest as string)));
    expect(f.kind).toBe(ErrorKind.AlreadyExists);
  }
  const metaLabels: Record<string, string> = {
    [Label.TargetSnapshotRef]: "chain-2",
    [Label.NydusMetaLayer]: "true",
    [Label.CRILayerDigest]: `sha256:${"3".repeat(64)}`,
  };
  if (withRef) metaLabels[Label.CRIImageRef] = IMAGE;
  const mounts = await sn.prepare("extract-2", "chain-1", metaLabels);
  const upper = upperOf(mounts);
  writeFileSync(join(upper, "bootstrap-was-here"), "x");
  await sn.commit("chain-2", "extract-2", metaLabels);
  return "chain-2";
}

function upperOf(m: Mount[]): string {
  const o = m[0]?.options.find((x) => x.startsWith("upperdir="));
  return o ? o.slice(9) : (m[0]?.source as string);
}

const option = (m: Mount[], name: string) => m[0]?.options.find((o) => o.startsWith(`${name}=`))?.slice(name.length + 1);

describe("nydus data layers", () => {
  test("a data layer being extracted is committed at once and answered AlreadyExists; nothing of the extraction key is left", async () => {
    await unpackImage();
    expect(sn.stat("chain-0").kind).toBe("committed");
    expect(sn.stat("chain-1").parent).toBe("chain-0");
    for (const k of ["extract-0", "extract-1"]) expect((await failure(Promise.resolve().then(() => sn.stat(k)))).kind).toBe(ErrorKind.NotFound);
    expect(remote.calls.filter((c) => c.op === "mount")).toEqual([]); // unpacking mounts nothing
  });

  test("two unpacks of the same layer at once: both AlreadyExists, one target, no leftover key or directory", async () => {
    const results = await Promise.all([1, 2, 3].map((n) => failure(sn.prepare(`race-${n}`, "", dataLayer("shared-chain", BLOB1)))));
    expect(results.map((r) => r.kind)).toEqual([ErrorKind.AlreadyExists, ErrorKind.AlreadyExists, ErrorKind.AlreadyExists]);
    const names = sn.list([]).map((i) => i.name);
    expect(names).toEqual(["shared-chain"]);
    await sn.cleanup();
    expect(readdirSync(sn.snapshotsDir).length).toBe(1);
  });

  test("Usage of a data layer counts its blob cache on top of what was recorded", async () => {
    await unpackImage();
    remote.cacheBytes.set(BLOB1, 123_456);
    const u = await sn.usage("chain-0");
    expect(u.size).toBeGreaterThanOrEqual(123_456);
    remote.cacheBytes.set(BLOB1, 0);
    expect((await sn.usage("chain-0")).size).toBe(u.size - 123_456);
  });
});

describe("mounting an image", () => {
  test("a container over the bootstrap layer mounts the image once (its blob ids) and overlays its mountpoint", async () => {
    const top = await unpackImage();
    const m = await sn.prepare("c1", top, { [Label.CRIImageRef]: IMAGE });
    const mount = remote.calls.filter((c) => c.op === "mount");
    expect(mount.length).toBe(1);
    expect(mount[0]).toMatchObject({ op: "mount", imageRef: IMAGE });
    expect([...(mount[0] as { blobIds: readonly string[] }).blobIds].sort()).toEqual(["1".repeat(64), "2".repeat(64)]);
    expect(m[0]?.type).toBe("overlay");
    const lower = option(m, "lowerdir")?.split(":") ?? [];
    expect(lower).toEqual([remote.mounted.values().next().value as string]);
    expect(option(m, "upperdir")).toBeDefined();
    // A second container of the same image reuses the instance; Mounts answers the same.
    const m2 = await sn.prepare("c2", top, {});
    expect(remote.calls.filter((c) => c.op === "mount").length).toBe(1);
    expect(option(m2, "lowerdir")).toBe(option(m, "lowerdir"));
    expect((await sn.mounts("c1"))[0]?.options).toEqual(m[0]?.options as string[]);
  });

  test("views: of the top layer, the image read-only (lowerdirs only); of a data layer, InvalidArgument", async () => {
    const top = await unpackImage();
    const v = await sn.view("v1", top, {});
    expect(option(v, "upperdir")).toBeUndefined();
    expect(option(v, "lowerdir")?.split(":").length).toBe(2); // the image, then the view's own dir
    const bad = await failure(sn.view("v2", "chain-0", {}));
    expect(bad.kind).toBe(ErrorKind.InvalidArgument);
    expect(bad.message).toContain("only can view nydus topmost layer");
    expect(() => sn.stat("v2")).toThrow(); // nothing created
  });

  test("a mount that fails is undone: the call fails with the remote's kind and leaves no snapshot or directory", async () => {
    const top = await unpackImage();
    const dirsBefore = readdirSync(sn.snapshotsDir).sort();
    remote.failNextMount = daemonDown();
    const f = await failure(sn.prepare("c-fail", top, {}));
    expect(f.kind).toBe(ErrorKind.Unavailable);
    expect(remote.mounted.size).toBe(0);
    await sn.prepare("c-fail", top, {}); // the key is free again, and the next mount works
    expect(remote.mounted.size).toBe(1);
    await sn.remove("c-fail");
    expect(readdirSync(sn.snapshotsDir).sort()).toEqual(dirsBefore);
    await sn.remove(top); // and the image is unmounted with its top layer
    expect(remote.mounted.size).toBe(0);
  });

  test("removing the top snapshot of an image unmounts it; removing a container does not", async () => {
    const top = await unpackImage();
    await sn.prepare("c1", top, {});
    const id = [...remote.mounted.keys()][0];
    await sn.remove("c1");
    expect(remote.calls.filter((c) => c.op === "umount" && c.metaId === id)).toEqual([]);
    expect(remote.mounted.size).toBe(1);
    await sn.remove(top);
    expect(remote.mounted.size).toBe(0);
    expect(remote.calls.filter((c) => c.op === "umount").length).toBeGreaterThanOrEqual(1);
  });

  test("daemon_mode none: no daemon, a fuse.nydus-overlayfs mount whose extraoption names the bootstrap and the snapshot dir", async () => {
    await open({ daemonless: true });
    const top = await unpackImage();
    const m = await sn.prepare("c1", top, {});
    expect(remote.calls.filter((c) => c.op === "mount")).toEqual([]);
    expect(m[0]?.type).toBe("fuse.nydus-overlayfs");
    const extra = JSON.parse(Buffer.from(option(m, "extraoption") as string, "base64").toString()) as Record<string, string>;
    expect(extra.source).toEndWith("image.boot");
    expect(extra.fs_version).toBe("v6");
    expect(existsSync(extra.snapshotdir as string)).toBe(true);
  });

  test("a plain OCI image never reaches the remote filesystem", async () => {
    const m = await sn.prepare("extract", "", { [Label.TargetSnapshotRef]: "oci-0" });
    await sn.commit("oci-0", "extract", {});
    const c = await sn.prepare("c", "oci-0", {});
    expect(m[0]?.type).toBe("bind");
    expect(c[0]?.type).toBe("overlay");
    expect(option(c, "lowerdir")).toEndWith("/fs");
    expect(remote.calls.filter((x) => x.op === "mount" || x.op === "ready")).toEqual([]);
  });
});
