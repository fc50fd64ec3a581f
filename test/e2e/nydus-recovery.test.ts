// Restarts and crashes with nydus images running (daemon modes dedicated and shared, recover
// policy restart): rafsnap killed alone keeps every mount and its daemons; rafsnap and its
// daemons killed together come back with the same daemon ids; a daemon killed under a live
// rafsnap is restarted; a deleted bootstrap is found by the readiness check at start, reported
// by `rafsnap status`, and refused with a clear error while other images keep working.
// containerd 2.x runs the scenario that matters most across a restart (rafsnap and every
// daemon killed, restart, a container created before starts), in dedicated mode; containerd
// 1.x runs everything in both modes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { mountsUnder } from "../harness/cleanup.ts";
import type { ContainerdMajor } from "../harness/containerd-versions.ts";
import type { CriContainer, CriPod } from "../harness/cri.ts";
import { HELLO } from "../harness/images.ts";
import { isAlive, waitFor } from "../harness/process.ts";
import { type NydusNode, startNydusNode } from "../support/nydus-node.ts";
import { rafsnapCli } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
const LOOP = ["sh", "-c", "while true; do cat /data/hello; sleep 0.2; done"];

const restartCases: { mode: "dedicated" | "shared"; containerd: ContainerdMajor }[] = [
  { mode: "dedicated", containerd: 1 },
  { mode: "shared", containerd: 1 },
  { mode: "dedicated", containerd: 2 },
];
for (const { mode, containerd } of restartCases) {
  describe.skipIf(!isRoot)(`nydus recovery (containerd ${containerd}.x, daemon_mode ${mode}, recover_policy restart)`, () => {
    /** Scenarios beyond the restart one are defined for containerd 1.x only (CI time): absent for 2.x, not skipped. */
    const only1x = (...args: Parameters<typeof test>) => {
      if (containerd === 1) test(...args);
    };
    let node: NydusNode;
    let pod: CriPod;
    let looper: CriContainer;
    let busybox = "";

    const blobfsMounts = () => mountsUnder(node.root).filter((m) => m.fsType === "fuse.rafsnap-blobfs").length;
    const daemons = () => node.rows<{ id: string; pid: number }>("SELECT id, pid FROM daemons ORDER BY id");
    const hello = async (c: CriContainer) => {
      const lines = await node.cri.waitForLog(c.id, (l) => l.length >= 1);
      expect(lines[0]?.text).toBe(HELLO);
    };
    /** The looping container's output keeps coming and stays right. */
    const looperAlive = async () => {
      const before = (await node.cri.waitForLog(looper.id, (l) => l.length > 0)).length;
      const lines = await node.cri.waitForLog(looper.id, (l) => l.length >= before + 3);
      expect(lines.every((l) => l.text === HELLO)).toBe(true);
    };

    beforeAll(async () => {
      node = await startNydusNode({ daemonMode: mode, containerd });
      busybox = node.images.busybox;
      await node.cri.pullImage(node.images.nydus);
      await node.cri.pullImage(busybox);
      pod = await node.cri.runPod(`recovery-${mode}`);
      looper = await node.cri.startContainer(pod, { image: node.images.nydus, command: LOOP });
      await node.cri.waitForLog(looper.id, (l) => l.length > 0);
    }, 600_000); // 2.x is downloaded on first use
    afterAll(() => node?.stop());

    only1x(
      "SIGKILL rafsnap only: mounts and daemons stay; a container created before starts",
      async () => {
        const c1 = await node.cri.createContainer(pod, { image: node.images.nydus, command: ["cat", "/data/hello"] });
        const mounts = blobfsMounts();
        expect(mounts).toBe(1); // one image mounted: one blobfs in either mode
        const before = daemons();
        process.kill(node.rafsnap.proc.pid, "SIGKILL");
        await node.rafsnap.proc.exited;
        await node.restartRafsnap();
        expect(daemons()).toEqual(before);
        expect(blobfsMounts()).toBe(mounts);
        await node.cri.startCreated(c1);
        await hello(c1);
        await looperAlive();
      },
      120_000,
    );

    test("SIGKILL rafsnap and every daemon: restart brings the daemons back; a created container starts", async () => {
      const c2 = await node.cri.createContainer(pod, { image: node.images.nydus, command: ["cat", "/data/hello"] });
      const before = daemons();
      process.kill(node.rafsnap.proc.pid, "SIGKILL");
      for (const d of before) process.kill(d.pid, "SIGKILL");
      await node.rafsnap.proc.exited;
      await waitFor("daemons gone", () => before.every((d) => !isAlive(d.pid)), 10_000);
      await node.restartRafsnap();
      const after = daemons();
      expect(after.map((d) => d.id)).toEqual(before.map((d) => d.id));
      expect(after.every((d, i) => d.pid !== before[i]?.pid && isAlive(d.pid))).toBe(true);
      await node.cri.startCreated(c2);
      await hello(c2);
    }, 120_000);

    only1x(
      "recover policy restart: a killed daemon is started again; new containers start",
      async () => {
        const before = daemons();
        for (const d of before) process.kill(d.pid, "SIGKILL");
        await waitFor(
          "daemons restarted",
          () => {
            const now = daemons();
            return now.length === before.length && now.every((d, i) => d.pid !== before[i]?.pid && isAlive(d.pid));
          },
          20_000,
        );
        const c3 = await node.cri.startContainer(pod, { image: node.images.nydus, command: ["cat", "/data/hello"] });
        await hello(c3);
      },
      120_000,
    );

    only1x(
      "readiness check: a deleted bootstrap is reported and refused; other images work",
      async () => {
        const metas = node.rows<{ id: number; labels: string }>("SELECT id, labels FROM snapshots WHERE kind = 'committed'");
        const meta = metas.find((m) => {
          const l = JSON.parse(m.labels) as Record<string, string>;
          return "containerd.io/snapshot/nydus-bootstrap" in l && l["containerd.io/snapshot/cri.image-ref"] === busybox;
        });
        expect(meta).toBeDefined();
        rmSync(join(node.root, "snapshots", String(meta?.id), "fs", "image", "image.boot"));
        expect(await node.rafsnap.stop()).toBe(0);
        await node.restartRafsnap();
        const st = await rafsnapCli(["status", "--root", node.root]);
        expect(st.code).toBe(1);
        expect(st.stdout).toContain(busybox);
        expect(st.stdout).toContain("is missing");
        const actives = () => node.rows<{ n: number }>("SELECT count(*) AS n FROM snapshots WHERE kind = 'active'")[0]?.n;
        const activeBefore = actives();
        let err = "";
        await node.cri.startContainer(pod, { image: busybox, command: ["true"] }).catch((e) => {
          err = String(e);
        });
        expect(err).toContain("bootstrap");
        expect(err).toContain("pull it again");
        expect(actives()).toBe(activeBefore); // the failed Prepare left no snapshot behind
        const ok = await node.cri.startContainer(pod, { image: node.images.nydus, command: ["cat", "/data/hello"] });
        await hello(ok);
        // (The looping container is not checked any more: with recover_policy restart, the
        // daemon killed above took its mount with it — failover is what keeps it, tested below.)
      },
      120_000,
    );
  });
}

// Failover: the supervisor holds each daemon's FUSE descriptor and state; a successor takes
// over, so a running container never notices. The page cache is dropped before each kill so
// the reads really reach the daemon.
for (const mode of ["dedicated", "shared"] as const) {
  describe.skipIf(!isRoot)(`nydus failover (daemon_mode ${mode}, recover_policy failover)`, () => {
    let node: NydusNode;
    beforeAll(async () => {
      node = await startNydusNode({ daemonMode: mode, recoverPolicy: "failover" });
    }, 180_000);
    afterAll(() => node?.stop());

    test("a container reading in a loop sees no error while its daemon is killed twice", async () => {
      const { cri } = node;
      await cri.pullImage(node.images.nydus);
      const pod = await cri.runPod(`failover-${mode}`);
      const reader = await cri.startContainer(pod, {
        image: node.images.nydus,
        command: ["sh", "-c", "while true; do cat /data/hello /data/dir/a || echo READ-ERROR; sleep 0.05; done"],
      });
      await cri.waitForLog(reader.id, (l) => l.length >= 4);
      const daemons = () => node.rows<{ id: string; pid: number }>("SELECT id, pid FROM daemons");
      for (let round = 0; round < 2; round++) {
        const before = daemons();
        expect(before.length).toBe(1);
        await Bun.write("/proc/sys/vm/drop_caches", "3");
        process.kill(before[0]?.pid as number, "SIGKILL");
        await waitFor(
          "successor daemon",
          () => {
            const now = daemons();
            return now.length === 1 && now[0]?.pid !== before[0]?.pid && isAlive(now[0]?.pid as number);
          },
          20_000,
        );
        const seen = (await cri.waitForLog(reader.id, () => true)).length;
        await Bun.write("/proc/sys/vm/drop_caches", "3");
        await cri.waitForLog(reader.id, (l) => l.length >= seen + 6);
      }
      const lines = await cri.waitForLog(reader.id, () => true);
      const bad = lines.filter((l) => l.text !== HELLO && l.text !== "a from layer 1");
      expect(bad).toEqual([]);
      // The successor serves new containers too.
      const fresh = await cri.startContainer(pod, { image: node.images.nydus, command: ["cat", "/data/dir/b"] });
      const out = await cri.waitForLog(fresh.id, (l) => l.length >= 1);
      expect(out[0]?.text).toBe("b from layer 1");
    }, 120_000);
  });
}
