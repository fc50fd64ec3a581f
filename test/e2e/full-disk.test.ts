// The core on a full disk (root: a small tmpfs as rafsnap's root; its log is elsewhere): a
// Remove whose metadata cannot be committed answers RESOURCE_EXHAUSTED and loses nothing —
// the snapshot and its data are still there after Cleanup, and it can be removed once there
// is room again. Reads keep working meanwhile; SIGTERM works, and it starts again and serves
// reads while the disk is still full.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { Cleanup } from "../harness/cleanup.ts";
import { run } from "../harness/process.ts";
import { codeOf } from "../support/failure.ts";
import { type RafsnapServer, startRafsnap } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/full-disk.test.ts needs root (tmpfs); run it as root as CI does");

describe.skipIf(!isRoot)("a full disk", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let root = "";
  let srv: RafsnapServer;

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-full-");
    root = join(dir, "root");
    mkdirSync(root);
    expect((await run(["mount", "-t", "tmpfs", "-o", "size=24m", "rafsnap-full", root])).code).toBe(0);
    cleanup.defer("tmpfs", async () => {
      await run(["umount", "-l", root]);
    });
    srv = cleanup.add("rafsnap", await startRafsnap(dir, { root }));
  }, 60_000);
  afterAll(() => cleanup.run());

  test("Remove on a full disk answers RESOURCE_EXHAUSTED and loses nothing; Cleanup keeps the data; restart and reads work", async () => {
    const c = srv.client;
    const res = await c.prepare({ key: "active", parent: "" });
    const upper = res.mounts[0]?.options.find((o) => o.startsWith("upperdir="))?.slice(9) ?? (res.mounts[0]?.source as string);
    await Bun.write(join(upper, "precious"), "keep me\n");
    await c.commit({ name: "layer", key: "active" });
    // Fill the filesystem to the last block.
    await run(["dd", "if=/dev/zero", `of=${join(root, "fill")}`, "bs=64k"], { timeoutMs: 60_000 });
    const removed = (await codeOf(c.remove({ key: "layer" }))).code;
    expect(removed).toBe(Code.ResourceExhausted);
    // Reads answer on the full disk, and the snapshot and its data are intact.
    expect((await c.stat({ key: "layer" })).info?.name).toBe("layer");
    await codeOf(c.cleanup({}));
    const snaps = readdirSync(join(root, "snapshots"));
    expect(snaps.filter((n) => n.startsWith("rm-"))).toEqual([]);
    const id = snaps[0] as string;
    expect(await Bun.file(join(root, "snapshots", id, "fs", "precious")).text()).toBe("keep me\n");
    // Writes of every kind answer RESOURCE_EXHAUSTED and leave nothing half made.
    expect((await codeOf(c.prepare({ key: "new", parent: "layer" }))).code).toBe(Code.ResourceExhausted);
    expect((await codeOf(c.update({ info: { name: "layer", labels: { a: "b".repeat(4000) } }, updateMask: { paths: ["labels.a"] } }))).code).toBe(
      Code.ResourceExhausted,
    );
    expect(readdirSync(join(root, "snapshots")).filter((n) => n !== id)).toEqual([]);
    // Still full: SIGTERM stops it, and it starts again and serves reads.
    expect(await srv.stop()).toBe(0);
    srv = cleanup.add("rafsnap again", await startRafsnap(dir, { root }));
    expect((await srv.client.stat({ key: "layer" })).info?.name).toBe("layer");
    const listed: string[] = [];
    for await (const r of srv.client.list({})) listed.push(...r.info.map((i) => i.name));
    expect(listed).toEqual(["layer"]);
    // Room again: the same Remove goes through and Cleanup empties the directory.
    rmSync(join(root, "fill"));
    await srv.client.remove({ key: "layer" });
    await srv.client.cleanup({});
    expect(readdirSync(join(root, "snapshots"))).toEqual([]);
    expect(existsSync(join(root, "fill"))).toBe(false);
  }, 120_000);
});
