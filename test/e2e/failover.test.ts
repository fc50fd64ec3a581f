// Failover of `rafsnap nydusd` (compiled binary, root): the daemon hands its FUSE descriptor
// and state to a supervisor (src/mount/fdpass.ts, as the snapshotter will), is killed with
// SIGKILL while a reader keeps reading, and a successor started with the same arguments
// detects the crash, waits in INIT, takes over and serves again. The reader sees the same
// content throughout and no error.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Supervisor } from "../../src/mount/index.ts";
import { unmountUnder } from "../harness/cleanup.ts";
import { type ChildProcess, spawnProcess, waitFor } from "../harness/process.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";
import { localfsConfig } from "../support/nydusd.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const BOOT = join(FIX, "rafs-v6-2.2.boot");
const LIB_SHA = "1810eba864521293bb0d6b55a3c82318d4d89f294ed761c456d9088a17de0c69";
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("nydusd failover", () => {
  let dir: string;
  const procs: ChildProcess[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-failover-"));
  });
  afterAll(async () => {
    for (const p of procs) await p.stop();
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  test("kill -9 the daemon; the successor takes over via the supervisor; reads go on", async () => {
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify(localfsConfig(FIX, join(dir, "cache"))));
    const mnt = join(dir, "mnt");
    const sock = join(dir, "api.sock");
    const supSock = join(dir, "supervisor.sock");
    const args = ["nydusd", "--id", "d1", "--supervisor", supSock, "fuse", "--config", config, "--bootstrap", BOOT, "--mountpoint", mnt, "--apisock", sock];
    const env = { PATH: SYSTEM_PATH, RAFSNAP_RUN_DIR: join(dir, "run") };
    const api = async (method: string, path: string) => fetch(`http://localhost${path}`, { method, unix: sock } as RequestInit);
    const state = async () => {
      try {
        return ((await (await api("GET", "/api/v1/daemon")).json()) as { state: string }).state;
      } catch {
        return "";
      }
    };
    const first = spawnProcess({ cmd: [requireBinary(), ...args], logFile: join(dir, "d1.log"), env });
    procs.push(first);
    await waitFor(
      "RUNNING",
      async () => (await state()) === "RUNNING",
      20_000,
      () => !first.hasExited(),
    );

    const sup = new Supervisor(supSock);
    try {
      await sup.save(async () => {
        const r = await api("PUT", "/api/v1/daemon/fuse/sendfd");
        expect(r.status).toBe(204);
      });

      // A reader that drops the page cache every round, so every read reaches the daemon.
      const out = join(dir, "reader.out");
      const reader = spawnProcess({
        cmd: ["sh", "-c", `while [ ! -e ${dir}/stop ]; do echo 3 > /proc/sys/vm/drop_caches; sha256sum ${mnt}/lib.rs || echo READ-FAILED; sleep 0.05; done`],
        logFile: out,
      });
      procs.push(reader);
      await Bun.sleep(400);

      process.kill(first.pid, "SIGKILL");
      await first.exited;

      const second = spawnProcess({ cmd: [requireBinary(), ...args], logFile: join(dir, "d2.log"), env });
      procs.push(second);
      await waitFor(
        "INIT",
        async () => (await state()) === "INIT",
        20_000,
        () => !second.hasExited(),
      ).catch((e) => {
        throw new Error(`${e.message}\n${second.logTail()}`);
      });
      await sup.restore(async () => {
        const r = await api("PUT", "/api/v1/daemon/fuse/takeover");
        if (r.status !== 204) throw new Error(`takeover: ${r.status} ${await r.text()}\n${second.logTail()}`);
      });
      expect(await state()).toBe("READY");
      expect((await api("PUT", "/api/v1/daemon/start")).status).toBe(204);
      expect(await state()).toBe("RUNNING");
      // Reads go on through the successor: a few more rounds (however slow the machine is).
      const count = () => readFileSync(out, "utf8").split("\n").filter(Boolean).length;
      const atTakeover = count();
      await waitFor("reads after the takeover", () => count() >= Math.max(6, atTakeover + 3), 30_000);
      writeFileSync(join(dir, "stop"), "");
      await reader.exited;

      const lines = readFileSync(out, "utf8").trim().split("\n");
      expect(lines.length).toBeGreaterThan(5);
      expect(lines.filter((l) => !l.startsWith(LIB_SHA))).toEqual([]);
      expect(await second.stop()).toBe(0);
    } finally {
      sup.close();
    }
  }, 60_000);
});
