// Nydus images end to end through Kubernetes CRI (issue: remote snapshots, daemon manager,
// recovery, cache GC): containerd's CRI plugin with snapshotter "nydus" = rafsnap (compiled),
// images converted by `rafsnap convert` in a registry on 127.0.0.1, real runc. For daemon modes
// dedicated and shared: a container starts from a nydus image without its data layers being
// pulled; removing the image and collecting garbage unmounts it and empties the cache; several
// images and containers at once; pull/remove/pull again; `ctr snapshots usage` counts the blob
// cache; plain OCI images through the same snapshotter, side by side with nydus ones. Each
// against containerd 1.x and 2.x (2.x: CRI pulls through the transfer service, which passes
// the remote-snapshot labels because the proxy plugin exports enable_remote_snapshot_annotations).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { CONTAINERD_MAJORS } from "../harness/containerd-versions.ts";
import { HELLO } from "../harness/images.ts";
import { mountsUnder } from "../harness/cleanup.ts";
import { BIG_BYTES, filesIn, type NydusNode, startNydusNode } from "../support/nydus-node.ts";

const isRoot = process.getuid?.() === 0;
const BLOB = "containerd.io/snapshot/nydus-blob";
const BOOT = "containerd.io/snapshot/nydus-bootstrap";

const cases = CONTAINERD_MAJORS.flatMap((containerd) => (["dedicated", "shared"] as const).map((mode) => ({ containerd, mode })));
for (const { containerd, mode } of cases) {
  describe.skipIf(!isRoot)(`nydus images through CRI (containerd ${containerd}.x, daemon_mode ${mode})`, () => {
    let node: NydusNode;
    beforeAll(async () => {
      node = await startNydusNode({ daemonMode: mode, containerd });
    }, 600_000); // 2.x is downloaded on first use
    afterAll(() => node?.stop());

    const labelsOf = () =>
      node
        .rows<{ key: string; kind: string; labels: string }>("SELECT key, kind, labels FROM snapshots")
        .map((r) => ({ ...r, labels: JSON.parse(r.labels) as Record<string, string> }));

    test("a container starts from a nydus image; data layers are never unpacked", async () => {
      const { cri, images } = node;
      await cri.pullImage(images.nydus);
      const snaps = labelsOf();
      const data = snaps.filter((s) => BLOB in s.labels);
      const meta = snaps.filter((s) => BOOT in s.labels);
      expect(data.length).toBeGreaterThan(0);
      expect(meta.length).toBe(1);
      expect(data.every((s) => s.kind === "committed")).toBe(true);
      const pod = await cri.runPod(`hello-${mode}`);
      const c = await cri.startContainer(pod, { image: images.nydus, command: ["sh", "-c", "cat /data/hello; cat /data/dir/a"] });
      const lines = await cri.waitForLog(c.id, (l) => l.length >= 2);
      expect(lines.map((l) => l.text)).toEqual([HELLO, "a from layer 1"]);
      const instances = node.rows<{ mountpoint: string; daemon_id: string }>("SELECT mountpoint, daemon_id FROM instances");
      expect(instances.length).toBe(1);
      const daemons = node.rows<{ mode: string }>("SELECT mode FROM daemons");
      expect(daemons.map((d) => d.mode)).toEqual([mode]);
      expect(mountsUnder(node.root).some((m) => m.mountPoint === instances[0]?.mountpoint)).toBe(true);
      await cri.stopAndRemoveContainer(c.id);
      await cri.removePod(pod);
    }, 120_000);

    test("removing the image unmounts it and empties the cache", async () => {
      const { cri, images } = node;
      expect(filesIn(node.cacheDir).length).toBeGreaterThan(0);
      await cri.removeImage(images.nydus);
      await node.ctd.gc({ namespace: "k8s.io" });
      expect(node.rows("SELECT * FROM instances")).toEqual([]);
      expect(filesIn(node.cacheDir)).toEqual([]);
      // Nothing stays mounted under the snapshots, and no directory is left behind.
      expect(mountsUnder(join(node.root, "snapshots")).map((m) => m.mountPoint)).toEqual([]);
      expect(filesIn(join(node.root, "snapshots")).filter((n) => n.startsWith("rm-"))).toEqual([]);
      const daemons = node.rows<{ mode: string }>("SELECT mode FROM daemons");
      expect(daemons.map((d) => d.mode)).toEqual(mode === "shared" ? ["shared"] : []);
    }, 120_000);

    const blobfsMounts = () => mountsUnder(node.root).filter((m) => m.fsType === "fuse.rafsnap-blobfs").length;
    const count = (sql: string) => node.rows<{ n: number }>(sql)[0]?.n ?? -1;
    const firstLine = async (c: { id: string }) => (await node.cri.waitForLog(c.id, (l) => l.length >= 1))[0]?.text;

    test("containers from three images at once; pruning everything empties the cache", async () => {
      const { cri, images } = node;
      for (const ref of [images.nydus, images.busybox, images.big]) await cri.pullImage(ref);
      const pod = await cri.runPod(`three-${mode}`);
      const cs = [
        await cri.startContainer(pod, { image: images.nydus, command: ["cat", "/data/hello"] }),
        await cri.startContainer(pod, { image: images.nydus, command: ["cat", "/data/dir/b"] }),
        await cri.startContainer(pod, { image: images.busybox, command: ["echo", "busybox says hi"] }),
        await cri.startContainer(pod, { image: images.big, command: ["cat", "/small"] }),
      ];
      expect(await Promise.all(cs.map(firstLine))).toEqual([HELLO, "b from layer 1", "busybox says hi", "small file of the big image"]);
      expect(count("SELECT count(*) AS n FROM instances")).toBe(3);
      expect(count("SELECT count(*) AS n FROM daemons")).toBe(mode === "shared" ? 1 : 3);
      expect(blobfsMounts()).toBe(mode === "shared" ? 1 : 3);
      for (const c of cs) await cri.stopAndRemoveContainer(c.id);
      await cri.removePod(pod);
      for (const ref of [images.nydus, images.busybox, images.big]) await cri.removeImage(ref);
      await node.ctd.gc({ namespace: "k8s.io" });
      expect(count("SELECT count(*) AS n FROM instances")).toBe(0);
      expect(filesIn(node.cacheDir)).toEqual([]);
      expect(blobfsMounts()).toBe(mode === "shared" ? 1 : 0);
      expect(
        mountsUnder(node.root)
          .filter((m) => m.fsType === "erofs")
          .map((m) => m.mountPoint),
      ).toEqual([]);
    }, 180_000);

    test("pull three, run two, remove all, pull one again and start it", async () => {
      const { cri, images } = node;
      for (const ref of [images.nydus, images.busybox, images.big]) await cri.pullImage(ref);
      const pod = await cri.runPod(`again-${mode}`);
      const a = await cri.startContainer(pod, { image: images.nydus, command: ["cat", "/data/hello"] });
      const b = await cri.startContainer(pod, { image: images.big, command: ["cat", "/small"] });
      expect(await firstLine(a)).toBe(HELLO);
      expect(await firstLine(b)).toBe("small file of the big image");
      for (const c of [a, b]) await cri.stopAndRemoveContainer(c.id);
      for (const ref of [images.nydus, images.busybox, images.big]) await cri.removeImage(ref);
      await node.ctd.gc({ namespace: "k8s.io" });
      expect(filesIn(node.cacheDir)).toEqual([]);
      await cri.pullImage(images.big);
      const again = await cri.startContainer(pod, { image: images.big, command: ["cat", "/small"] });
      expect(await firstLine(again)).toBe("small file of the big image");
      await cri.stopAndRemoveContainer(again.id);
      await cri.removePod(pod);
    }, 180_000);

    test("ctr snapshots usage of a data layer grows by about the bytes read", async () => {
      const { cri, images } = node;
      await cri.pullImage(images.big);
      const data = labelsOf().filter((s) => BLOB in s.labels && s.labels["containerd.io/snapshot/cri.image-ref"] === images.big);
      expect(data.length).toBe(1);
      const chainId = data[0]?.labels["containerd.io/snapshot.ref"] as string;
      const usage = async () => {
        const r = await node.ctd.ctr(["snapshots", "--snapshotter", "nydus", "usage", chainId], { namespace: "k8s.io" });
        expect(r.code).toBe(0);
        const m = r.stdout.match(/\s([\d.]+)\s*(B|KiB|MiB|GiB)\s/);
        if (!m) throw new Error(`ctr snapshots usage: ${r.stdout}`);
        return Number(m[1]) * { B: 1, KiB: 1024, MiB: 1 << 20, GiB: 1 << 30 }[m[2] as "B"];
      };
      const pod = await cri.runPod(`usage-${mode}`);
      const small = await cri.startContainer(pod, { image: images.big, command: ["cat", "/small"] });
      expect(await firstLine(small)).toBe("small file of the big image");
      const before = await usage();
      const reader = await cri.startContainer(pod, { image: images.big, command: ["sh", "-c", "cat /big | wc -c"] });
      expect(await firstLine(reader)).toBe(String(BIG_BYTES));
      const grown = (await usage()) - before;
      console.log(`usage: ${before} B before, grew by ${grown} B after reading ${BIG_BYTES} B`);
      expect(grown).toBeGreaterThan(BIG_BYTES * 0.9);
      expect(grown).toBeLessThan(BIG_BYTES * 1.2);
      for (const c of [small, reader]) await cri.stopAndRemoveContainer(c.id);
      await cri.removePod(pod);
    }, 120_000);

    test("plain OCI images run through the same snapshotter, next to nydus ones", async () => {
      const { cri, images } = node;
      await cri.pullImage(images.oci);
      await cri.pullImage(images.nydus);
      const oci = labelsOf().filter((s) => s.labels["containerd.io/snapshot/cri.image-ref"] === images.oci);
      expect(oci.length).toBeGreaterThan(0);
      expect(oci.some((s) => BLOB in s.labels || BOOT in s.labels)).toBe(false);
      const pod = await cri.runPod(`mix-${mode}`);
      const a = await cri.startContainer(pod, { image: images.oci, command: ["cat", "/data/hello"] });
      const b = await cri.startContainer(pod, { image: images.nydus, command: ["cat", "/data/hello"] });
      expect(await firstLine(a)).toBe(HELLO);
      expect(await firstLine(b)).toBe(HELLO);
      const refs = node.rows<{ image_id: string }>("SELECT image_id FROM instances").map((r) => r.image_id);
      expect(refs).toContain(images.nydus);
      expect(refs).not.toContain(images.oci);
      for (const c of [a, b]) await cri.stopAndRemoveContainer(c.id);
      await cri.removePod(pod);
    }, 120_000);
  });
}
