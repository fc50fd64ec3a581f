// Validates the real-components harness against containerd's built-in overlayfs snapshotter:
// reproducible test images, a private registry, a private containerd, ctr pull/run, snapshot
// chains, synchronous GC, and a stop() that leaves no shim, container, mount or cgroup behind.
// Root only (mounts, runc); CI runs it as root.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { mountsUnder, useCleanup } from "../harness/cleanup.ts";
import { startContainerd } from "../harness/containerd.ts";
import type { Containerd } from "../harness/containerd.ts";
import { BUILD_IMAGES as BUILD, chainIds, digests, HELLO, mergedTreeScript } from "../harness/images.ts";
import { isAlive, run } from "../harness/process.ts";
import { startRegistry } from "../harness/registry.ts";
import type { Registry } from "../harness/registry.ts";
import { cgroupDirs, descendants, findShims } from "../harness/shims.ts";

const OK = "RAFSNAP-E2E-OK";
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/harness.test.ts needs root (mounts, runc); run it as root as CI does");

describe.skipIf(!isRoot)("e2e harness (containerd overlayfs, real registry)", () => {
  const cleanup = useCleanup();
  let dir = "";
  let registry: Registry;
  let ctd: Containerd;
  let multi = "";

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-e2e-");
    // Build twice: the second build (which also pushes) must give identical digests.
    const a = await run(["bash", BUILD, join(dir, "img-a")], { timeoutMs: 60_000 });
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const b = await run(["bash", BUILD, join(dir, "img-b"), registry.host], { timeoutMs: 60_000 });
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    ctd = cleanup.add("containerd", await startContainerd({ dir: join(dir, "containerd") }));
    multi = `${registry.host}/multi:v1`;
  }, 90_000);

  test("images are byte-reproducible and the registry serves the same manifest", async () => {
    const a = digests(join(dir, "img-a"));
    const b = digests(join(dir, "img-b"));
    expect([...a.keys()].sort()).toEqual(["busybox:single", "multi:v1"]);
    expect(b).toEqual(a);
    for (const [ref, digest] of a) {
      const [name, tag] = ref.split(":");
      const res = await fetch(`${registry.url}/v2/${name}/manifests/${tag}`, {
        method: "HEAD",
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("docker-content-digest")).toBe(digest);
    }
  });

  test("ctr pull unpacks the three-layer chain into overlayfs", async () => {
    await ctd.ctrOk(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", multi]);
    const rows = await ctd.snapshots("overlayfs");
    const chain = chainIds(join(dir, "img-a/multi"));
    expect(chain).toHaveLength(3);
    expect(rows.map((r) => r.key).sort()).toEqual([...chain].sort());
    for (const [i, key] of chain.entries()) {
      const row = rows.find((r) => r.key === key);
      expect(row?.kind).toBe("Committed");
      expect(row?.parent).toBe(i === 0 ? "" : (chain[i - 1] as string));
    }
    // The xattr travels through tar (PAX SCHILY.xattr) into the unpacked layer.
    const snaps = join(ctd.root, "io.containerd.snapshotter.v1.overlayfs/snapshots");
    const withXattr = readdirSync(snaps)
      .map((n) => join(snaps, n, "fs/data/xattr"))
      .filter((p) => existsSync(p));
    expect(withXattr).toHaveLength(1);
    const attr = await run(["getfattr", "--only-values", "-n", "user.rafsnap", withXattr[0] as string]);
    expect(attr.stdout).toBe("yes");
  });

  test("ctr run sees the merged tree: whiteout, opaque dir, symlink, hard link, setuid", async () => {
    const script = mergedTreeScript(OK);
    const r = await ctd.ctr(["run", "--rm", "--snapshotter", "overlayfs", multi, "ctr-test-1", "/bin/sh", "-c", script], { timeoutMs: 30_000 });
    if (r.code !== 0) console.error(r.stderr, ctd.logTail(2000));
    expect(r.timedOut).toBe(false);
    expect(r.stdout).toBe(`${HELLO}\n${OK}\n`);
    expect(r.code).toBe(0);
  });

  test("the image's Cmd prints the hello line", async () => {
    const r = await ctd.ctr(["run", "--rm", "--snapshotter", "overlayfs", multi, "ctr-test-2"], { timeoutMs: 30_000 });
    expect(r.stdout).toBe(`${HELLO}\n`);
    expect(r.code).toBe(0);
    // --rm removed the container and its active snapshot; only the image chain is left.
    expect(await ctd.ctrOk(["containers", "ls", "-q"])).toBe("");
    expect((await ctd.snapshots("overlayfs")).every((s) => s.kind === "Committed")).toBe(true);
  });

  test("removing the image and running gc() removes every snapshot and blob", async () => {
    await ctd.ctrOk(["images", "rm", multi]); // no --sync: gc() must do the work
    await ctd.gc();
    expect(await ctd.snapshots("overlayfs")).toEqual([]);
    expect(readdirSync(join(ctd.root, "io.containerd.snapshotter.v1.overlayfs/snapshots"))).toEqual([]);
    expect((await ctd.ctrOk(["content", "ls", "-q"])).trim()).toBe("");
  });

  test("stop() after a containerd crash kills the shim and container and unmounts", async () => {
    const image = `${registry.host}/busybox:single`;
    await ctd.ctrOk(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", image]);
    await ctd.ctrOk(["run", "-d", "--snapshotter", "overlayfs", image, "ctr-bg", "/bin/sleep", "600"], { timeoutMs: 30_000 });
    const shims = findShims(ctd.address);
    expect(shims.map((s) => s.id)).toEqual(["ctr-bg"]);
    expect(mountsUnder(ctd.dir).length).toBeGreaterThan(0);
    const procs = shims.flatMap((s) => descendants(s.pid));
    const cgroups = procs.flatMap(cgroupDirs);
    expect(procs.length).toBeGreaterThan(0);
    expect(cgroups.length).toBeGreaterThan(0);
    process.kill(ctd.process.pid, "SIGKILL"); // containerd gone: stop() cannot ask it for anything
    await ctd.process.exited;
    await ctd.stop();
    for (const p of [...shims.map((s) => s.pid), ...procs]) expect(isAlive(p)).toBe(false);
    for (const c of cgroups) expect(existsSync(c)).toBe(false);
    expect(findShims(ctd.address)).toEqual([]);
    expect(mountsUnder(ctd.dir)).toEqual([]);
    expect(existsSync(ctd.address)).toBe(false);
  });
});
