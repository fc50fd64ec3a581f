// Nydus images end to end through Kubernetes CRI (issue: remote snapshots, daemon manager,
// recovery, cache GC): containerd's CRI plugin with snapshotter "nydus" = rafsnap (compiled),
// images converted by `rafsnap convert` in a registry on 127.0.0.1, real runc. For daemon modes
// dedicated and shared: a container starts from a nydus image without its data layers being
// pulled; removing the image and collecting garbage unmounts it and empties the cache.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { HELLO } from "../harness/images.ts";
import { mountsUnder } from "../harness/cleanup.ts";
import { filesIn, type NydusNode, startNydusNode } from "../support/nydus-node.ts";

const isRoot = process.getuid?.() === 0;
const BLOB = "containerd.io/snapshot/nydus-blob";
const BOOT = "containerd.io/snapshot/nydus-bootstrap";

for (const mode of ["dedicated", "shared"] as const) {
  describe.skipIf(!isRoot)(`nydus images through CRI (daemon_mode ${mode})`, () => {
    let node: NydusNode;
    beforeAll(async () => {
      node = await startNydusNode({ daemonMode: mode });
    }, 180_000);
    afterAll(() => node?.stop());

    const labelsOf = () =>
      node.rows<{ key: string; kind: string; labels: string }>("SELECT key, kind, labels FROM snapshots").map((r) => ({ ...r, labels: JSON.parse(r.labels) as Record<string, string> }));

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
      const daemons = node.rows<{ mode: string }>("SELECT mode FROM daemons");
      expect(daemons.map((d) => d.mode)).toEqual(mode === "shared" ? ["shared"] : []);
    }, 120_000);
  });
}
