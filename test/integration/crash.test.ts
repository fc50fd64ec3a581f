// Crash safety: SIGKILL `rafsnap serve` in the middle of a Prepare/Commit/Remove loop, restart
// it, and check that the database and `<root>/snapshots` agree: every snapshot the database
// has has its directory, and Cleanup removes every directory it does not have.
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { SnapshotsClient } from "../support/snapshots-client.ts";
import { withScratch } from "../support/rafsnap.ts";

/** Runs Prepare/Commit/Remove with a few files per layer until a call fails (the kill). */
async function churn(c: SnapshotsClient, round: number): Promise<number> {
  let ops = 0;
  let parent = "";
  try {
    for (let i = 0; ; i++) {
      const key = `r${round}/active-${i}`;
      const name = `r${round}/layer-${i}`;
      const res = await c.prepare({ key, parent });
      const upper = res.mounts[0]?.options.find((o) => o.startsWith("upperdir="))?.slice(9) ?? res.mounts[0]?.source;
      if (upper) await Bun.write(join(upper, `f${i}`), `layer ${i}\n`);
      await c.commit({ name, key });
      ops += 2;
      if (i % 3 === 2) {
        // remove the top of the chain now and then, so removals are in flight too
        await c.prepare({ key: `${key}-tmp`, parent: name });
        await c.remove({ key: `${key}-tmp` });
        ops += 2;
      }
      parent = name;
    }
  } catch {
    return ops;
  }
}

function dbIds(root: string): Set<string> {
  const db = new Database(join(root, "rafsnap.db"), { readonly: true });
  try {
    return new Set(
      db
        .query<{ id: number }, []>("SELECT id FROM snapshots")
        .all()
        .map((r) => String(r.id)),
    );
  } finally {
    db.close();
  }
}

test("SIGKILL during Prepare/Commit/Remove: database and directories reconcile", () =>
  withScratch("crash", async (s) => {
    const root = join(s.dir, "root");
    for (let round = 0; round < 4; round++) {
      const srv = await s.start({ root });
      const running = churn(srv.client, round);
      await Bun.sleep(150 + round * 120);
      process.kill(srv.proc.pid, "SIGKILL");
      await srv.proc.exited;
      const ops = await running;
      expect(ops).toBeGreaterThan(0);

      const ids = dbIds(root);
      const snapshotsDir = join(root, "snapshots");
      for (const id of ids) expect(existsSync(join(snapshotsDir, id, "fs"))).toBe(true);

      const again = await s.start({ root });
      try {
        // Every snapshot is still usable after the restart.
        for await (const r of again.client.list({})) {
          for (const i of r.info) expect((await again.client.stat({ key: i.name })).info?.name).toBe(i.name);
        }
        await again.client.cleanup({});
        const dirs = readdirSync(snapshotsDir).sort();
        expect(dirs).toEqual([...dbIds(root)].sort());
      } finally {
        expect(await again.stop()).toBe(0);
      }
    }
  }));

test("killed between a Remove's rename and its metadata commit: the snapshot and its data survive, Cleanup gives the directory its name back", () =>
  withScratch("crash-remove", async (s) => {
    const root = join(s.dir, "root");
    const faulty = await s.start({ root, env: { RAFSNAP_FAULT_POINT: "remove:renamed" } });
    const res = await faulty.client.prepare({ key: "active", parent: "" });
    const upper = res.mounts[0]?.options.find((o) => o.startsWith("upperdir="))?.slice(9) ?? (res.mounts[0]?.source as string);
    await Bun.write(join(upper, "precious"), "keep me\n");
    await faulty.client.commit({ name: "layer", key: "active" });
    const id = [...dbIds(root)][0] as string;
    await expect(faulty.client.remove({ key: "layer" })).rejects.toThrow();
    await faulty.proc.exited;
    // Died after the rename, before the COMMIT: the row is there, the directory is rm-<id>.
    expect(dbIds(root).has(id)).toBe(true);
    expect(existsSync(join(root, "snapshots", `rm-${id}`))).toBe(true);
    const again = await s.start({ root });
    try {
      expect((await again.client.stat({ key: "layer" })).info?.name).toBe("layer");
      await again.client.cleanup({});
      expect(readdirSync(join(root, "snapshots"))).toEqual([id]);
      expect(await Bun.file(join(root, "snapshots", id, "fs", "precious")).text()).toBe("keep me\n");
      // And it can still be removed for real.
      await again.client.remove({ key: "layer" });
      await again.client.cleanup({});
      expect(readdirSync(join(root, "snapshots"))).toEqual([]);
    } finally {
      expect(await again.stop()).toBe(0);
    }
  }));
