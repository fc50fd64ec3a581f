// The snapshots service in one process, round trip through grpc-js on a unix socket and a
// gRPC client: the error of each layer below reaches the client with containerd's status
// code and a message that names what it is about. No root (the nydus side is a fake
// RemoteFs; the real one is tested end to end).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { Snapshots } from "../../gen/containerd/services/snapshots/v1/snapshots_pb.ts";
import { Label } from "../labels/index.ts";
import { silentLogger } from "../log/index.ts";
import { Snapshotter } from "../snapshot/index.ts";
import { MetaStore, openDb, systemClock } from "../store/index.ts";
import { daemonDown, type FakeRemoteFs, fakeRemoteFs } from "../../test/fakes/remote-fs.ts";
import { codeOf } from "../../test/support/failure.ts";
import { type SnapshotsClient, snapshotsClient } from "../../test/support/snapshots-client.ts";
import { listenUnix, type RunningServer } from "./server.ts";
import { snapshotsService } from "./snapshots-service.ts";

describe("snapshots service error mapping (round trip)", () => {
  let dir: string;
  let store: MetaStore;
  let remote: FakeRemoteFs;
  let sn: Snapshotter;
  let server: RunningServer;
  let client: SnapshotsClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-svc-"));
    store = new MetaStore(openDb(join(dir, "rafsnap.db")), systemClock());
    remote = fakeRemoteFs();
    sn = await Snapshotter.open({ root: join(dir, "root"), store, logger: silentLogger(), remote });
    const socket = join(dir, "s.sock");
    server = await listenUnix(
      { path: socket, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      [{ service: Snapshots, impl: snapshotsService(sn) }],
      silentLogger(),
    );
    client = snapshotsClient(socket);
  });
  afterAll(async () => {
    await server?.close(1000);
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("each layer's failure has its code: store, snapshotter, filters, keys, labels, remote filesystem, file system", async () => {
    // Store: a missing snapshot.
    let r = await codeOf(client.stat({ key: "missing" }));
    expect(r.code).toBe(Code.NotFound);
    expect(r.message).toContain('"missing"');
    // Snapshotter: a nydus data layer is answered AlreadyExists (containerd skips its download).
    r = await codeOf(client.prepare({ key: "x", labels: { [Label.TargetSnapshotRef]: "layer", [Label.NydusDataLayer]: "true" } }));
    expect(r.code).toBe(Code.AlreadyExists);
    // Keys and labels: InvalidArgument naming them.
    r = await codeOf(client.prepare({ key: "a/../b" }));
    expect(r.code).toBe(Code.InvalidArgument);
    r = await codeOf(client.prepare({ key: "k", labels: { l: "v".repeat(5000) } }));
    expect(r.code).toBe(Code.InvalidArgument);
    // Filters: InvalidArgument naming the filter, on the stream.
    r = await codeOf(
      (async () => {
        for await (const _ of client.list({ filters: ["name~=("] })) void _;
      })(),
    );
    expect(r.code).toBe(Code.InvalidArgument);
    // Remote filesystem: a daemon that does not come up is Unavailable, and nothing is left.
    const meta = { [Label.TargetSnapshotRef]: "meta", [Label.NydusMetaLayer]: "true", [Label.CRIImageRef]: "registry.test/a:1" };
    await codeOf(client.prepare({ key: "extract-meta", parent: "layer", labels: meta }));
    await client.commit({ name: "meta", key: "extract-meta", labels: meta });
    remote.failNextMount = daemonDown();
    r = await codeOf(client.prepare({ key: "container", parent: "meta" }));
    expect(r.code).toBe(Code.Unavailable);
    expect(r.message).toContain("did not reach RUNNING");
    expect((await codeOf(client.stat({ key: "container" }))).code).toBe(Code.NotFound);
    // A child still uses its parent: FailedPrecondition.
    r = await codeOf(client.remove({ key: "layer" }));
    expect(r.code).toBe(Code.FailedPrecondition);
    // The file system under a snapshot: its directory gone, FailedPrecondition naming it.
    const view = await client.view({ key: "v", parent: "" });
    rmSync(view.mounts[0]?.source as string, { recursive: true, force: true });
    r = await codeOf(client.commit({ name: "v-c", key: "v" }));
    expect(r.code).toBe(Code.FailedPrecondition); // not NotFound: the snapshot exists
    expect(r.message).toContain('snapshot "v" has lost its directory');
    const active = await client.prepare({ key: "a", parent: "" });
    rmSync(active.mounts[0]?.source as string, { recursive: true, force: true });
    r = await codeOf(client.usage({ key: "a" }));
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.message).toContain('snapshot "a" has lost its directory');
  });
});
