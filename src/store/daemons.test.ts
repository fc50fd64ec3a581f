import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlreadyExists, isNotFound } from "../errdefs/index.ts";
import { type NewDaemon, DaemonStore } from "./daemons.ts";
import { openDb, openDbReadonly } from "./db.ts";

let dir = "";
let ds: DaemonStore;
let now = 1;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-daemons-"));
  ds = new DaemonStore(openDb(join(dir, "rafsnap.db")), () => now++);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const daemon = (id: string, mode: "dedicated" | "shared" = "dedicated"): NewDaemon => ({
  id,
  pid: 0,
  apiSocket: `/r/socket/${id}/api.sock`,
  mode,
  fsDriver: "fusedev",
  mountpoint: "/r/mnt",
  configDir: `/r/config/${id}`,
  bootstrap: null,
  supervisorPath: null,
  logDir: "/r/logs",
  logLevel: "info",
  logToStdout: true,
  logRotationSize: 0,
  threadNum: 0,
  failoverPolicy: "resend",
});
const inst = (snapshotId: string, daemonId: string) => ({
  snapshotId,
  imageId: "127.0.0.1:5000/a:1",
  daemonId,
  fsDriver: "fusedev",
  snapshotDir: `/r/snapshots/${snapshotId}`,
  bootstrap: `/r/snapshots/${snapshotId}/fs/image/image.boot`,
  mountpoint: `/r/mnt/${snapshotId}`,
  blobIds: ["b1"],
  annotations: {},
});

test("daemons and instances: sequence order, duplicates refused, pid updates, cascade on removal", () => {
  ds.addDaemon(daemon("d1", "shared"));
  expect(
    isAlreadyExists(
      (() => {
        try {
          ds.addDaemon(daemon("d1"));
        } catch (e) {
          return e;
        }
      })(),
    ),
  ).toBe(true);
  ds.setDaemonPid("d1", 42);
  expect(ds.getDaemon("d1")?.pid).toBe(42);
  expect(
    isNotFound(
      (() => {
        try {
          ds.setDaemonPid("nope", 1);
        } catch (e) {
          return e;
        }
      })(),
    ),
  ).toBe(true);
  ds.addInstance(inst("9", "d1"));
  ds.addInstance(inst("3", "d1"));
  expect(ds.listInstances().map((i) => [i.snapshotId, i.seq])).toEqual([
    ["9", 1],
    ["3", 2],
  ]);
  expect(() => ds.addInstance(inst("9", "d1"))).toThrow(/already exists/);
  // An instance must belong to a recorded daemon.
  expect(() => ds.addInstance(inst("4", "ghost"))).toThrow();
  ds.setInstanceStatus("3", "mount gone");
  expect(ds.getInstance("3")).toMatchObject({ status: "broken", problem: "mount gone" });
  ds.setInstanceStatus("3", null);
  expect(ds.getInstance("3")).toMatchObject({ status: "ready", problem: null });
  ds.removeInstance("9");
  ds.addInstance(inst("9", "d1"));
  expect(ds.getInstance("9")?.seq).toBe(3); // sequence numbers only grow
  ds.removeDaemon("d1");
  expect(ds.listDaemons()).toEqual([]);
  expect(ds.listInstances()).toEqual([]);
});

test("readiness findings are replaced as a whole and readable read-only beside the writer", () => {
  ds.replaceFindings([
    { subject: "a", problem: "p", fix: "f" },
    { subject: "b", problem: "q", fix: "g" },
  ]);
  ds.replaceFindings([{ subject: "c", problem: "r", fix: "h" }]);
  const ro = new DaemonStore(openDbReadonly(join(dir, "rafsnap.db")), () => 0);
  expect(ro.findings().map((f) => f.subject)).toEqual(["c"]);
  expect(() => ro.replaceFindings([])).toThrow();
});
