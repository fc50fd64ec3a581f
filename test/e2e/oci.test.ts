// End to end, as a node operator runs it: real containerd with rafsnap (the compiled binary)
// as its `nydus` proxy snapshotter, a real registry on 127.0.0.1, images built here. Pull, run,
// inspect with `ctr snapshots`, remove, garbage-collect — and nothing may be left in rafsnap's
// database or under <root>/snapshots. Against containerd 1.x and 2.x (config versions 2 and 3;
// 2.x pulls through its transfer service). Root only (mounts, runc); CI runs it as root.
import { Database } from "bun:sqlite";
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { useCleanup } from "../harness/cleanup.ts";
import { type Containerd, startContainerd } from "../harness/containerd.ts";
import { CONTAINERD_MAJORS, containerdOf } from "../harness/containerd-versions.ts";
import { BUILD_IMAGES, chainIds, HELLO, mergedTreeScript } from "../harness/images.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { type RafsnapServer, startRafsnap } from "../support/rafsnap.ts";

const SN = "nydus";
const OK = "RAFSNAP-OCI-OK";
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/oci.test.ts needs root (mounts, runc); run it as root as CI does");

function rows(root: string): { id: number; key: string; kind: string }[] {
  const db = new Database(join(root, "rafsnap.db"), { readonly: true });
  try {
    return db.query<{ id: number; key: string; kind: string }, []>("SELECT id, key, kind FROM snapshots").all();
  } finally {
    db.close();
  }
}

describe.skipIf(!isRoot).each(CONTAINERD_MAJORS.map((m) => [m]))("OCI images through containerd %d.x and rafsnap", (major) => {
  const cleanup = useCleanup();
  let dir = "";
  let registry: Registry;
  let rafsnap: RafsnapServer;
  let ctd: Containerd;
  let image = "";
  let chain: string[] = [];

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-oci-");
    registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const b = await run(["bash", BUILD_IMAGES, join(dir, "img"), registry.host], { timeoutMs: 60_000 });
    expect(b.code).toBe(0);
    rafsnap = cleanup.add("rafsnap", await startRafsnap(join(dir, "rafsnap")));
    const binaries = await containerdOf(major);
    ctd = cleanup.add("containerd", await startContainerd({ dir: join(dir, "containerd"), binaries, proxySnapshotters: { [SN]: rafsnap.socket } }));
    image = `${registry.host}/multi:v1`;
    chain = chainIds(join(dir, "img/multi"));
  }, 600_000); // 2.x is downloaded on first use

  test("ctr images pull unpacks every layer into rafsnap", async () => {
    await ctd.ctrOk(["images", "pull", "--plain-http", "--snapshotter", SN, image], { timeoutMs: 120_000 });
    const listed = await ctd.snapshots(SN);
    expect(listed.map((r) => r.key).sort()).toEqual([...chain].sort());
    for (const [i, key] of chain.entries()) {
      const row = listed.find((r) => r.key === key);
      expect(row?.kind).toBe("Committed");
      expect(row?.parent).toBe(i === 0 ? "" : (chain[i - 1] as string));
    }
    // containerd's metadata and ours agree: one committed row per layer.
    const ours = rows(rafsnap.root);
    expect(ours).toHaveLength(chain.length);
    expect(ours.every((r) => r.kind === "committed")).toBe(true);
    // The layer's xattr was unpacked into rafsnap's directory.
    const snaps = join(rafsnap.root, "snapshots");
    const withXattr = readdirSync(snaps)
      .map((n) => join(snaps, n, "fs/data/xattr"))
      .filter((p) => existsSync(p));
    expect(withXattr).toHaveLength(1);
    expect((await run(["getfattr", "--only-values", "-n", "user.rafsnap", withXattr[0] as string])).stdout).toBe("yes");
  });

  test("ctr snapshots info, usage and tree answer for rafsnap's snapshots", async () => {
    const top = chain.at(-1) as string;
    const info = JSON.parse(await ctd.ctrOk(["snapshots", "--snapshotter", SN, "info", top]));
    expect(info.Name).toBe(top);
    expect(info.Parent).toBe(chain.at(-2));
    expect(info.Kind).toBe("Committed");
    const usage = await ctd.ctrOk(["snapshots", "--snapshotter", SN, "usage", chain[0] as string]);
    // KEY SIZE INODES; the base layer holds busybox, so well over 100 KiB and 30 inodes.
    const m = (usage.trim().split("\n")[1] ?? "").match(/^\S+\s+([\d.]+) (KiB|MiB)\s+(\d+)$/);
    expect(m).not.toBeNull();
    expect(Number(m?.[3])).toBeGreaterThan(30);
    const tree = await ctd.ctrOk(["snapshots", "--snapshotter", SN, "tree"]);
    for (const k of chain) expect(tree).toContain(k);
  });

  test("ctr snapshots prepare / rm of an active snapshot on the image", async () => {
    const top = chain.at(-1) as string;
    const mounts = await ctd.ctrOk(["snapshots", "--snapshotter", SN, "prepare", "--mounts", "e2e-active", top]);
    expect(mounts).toContain("overlay");
    expect(rows(rafsnap.root).some((r) => r.kind === "active")).toBe(true);
    await ctd.ctrOk(["snapshots", "--snapshotter", SN, "rm", "e2e-active"]);
    // containerd removes from its own metadata at once and from the backend at GC.
    await ctd.gc();
    expect(rows(rafsnap.root).some((r) => r.kind === "active")).toBe(false);
    const rm = await ctd.ctr(["snapshots", "--snapshotter", SN, "rm", chain[0] as string]);
    expect(rm.code).not.toBe(0); // it has children: FailedPrecondition reaches ctr
  });

  test("ctr run sees the merged tree (whiteout, opaque dir, symlink, hard link, setuid)", async () => {
    const r = await ctd.ctr(["run", "--rm", "--snapshotter", SN, image, "oci-run-1", "/bin/sh", "-c", mergedTreeScript(OK)], {
      timeoutMs: 60_000,
    });
    if (r.code !== 0) console.error(r.stderr, ctd.logTail(2000), rafsnap.proc.logTail(2000));
    expect(r.stdout).toBe(`${HELLO}\n${OK}\n`);
    expect(r.code).toBe(0);
  });

  test("a container keeps its snapshot until removed; the image's Cmd runs", async () => {
    await ctd.ctrOk(["run", "--snapshotter", SN, image, "oci-run-2"], { timeoutMs: 60_000 });
    const active = (await ctd.snapshots(SN)).filter((s) => s.kind === "Active");
    expect(active.map((s) => s.key)).toEqual(["oci-run-2"]);
    expect(active[0]?.parent).toBe(chain.at(-1));
    await ctd.ctrOk(["containers", "rm", "oci-run-2"]);
    expect((await ctd.snapshots(SN)).some((s) => s.kind === "Active")).toBe(false);
  });

  test("removing the image and collecting garbage frees every snapshot, row and directory", async () => {
    await ctd.ctrOk(["images", "rm", image]);
    await ctd.gc();
    expect(await ctd.snapshots(SN)).toEqual([]);
    expect(rows(rafsnap.root)).toEqual([]);
    expect(readdirSync(join(rafsnap.root, "snapshots"))).toEqual([]);
    expect(rafsnap.proc.hasExited()).toBe(false);
  });
});
