// `rafsnap nydusd` (the compiled binary, as root): nydusd's command line and HTTP API, the
// nydus fixture served from a localfs backend through blobfs + kernel EROFS, and a clean
// unmount on SIGTERM.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mountsUnder, unmountUnder } from "../harness/cleanup.ts";
import { run, spawnProcess, waitFor } from "../harness/process.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";
import { rafsnapCli } from "../support/rafsnap.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const BOOT = join(FIX, "rafs-v6-2.2.boot");
const LIB_SHA = "1810eba864521293bb0d6b55a3c82318d4d89f294ed761c456d9088a17de0c69";
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("rafsnap nydusd", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-nydusd-"));
  });
  afterAll(() => {
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  test("dedicated fuse mode: RUNNING, the image tree, metrics, SIGTERM unmounts", async () => {
    const config = join(dir, "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        device: { backend: { type: "localfs", config: { dir: FIX } }, cache: { type: "blobcache", config: { work_dir: join(dir, "cache") } } },
        mode: "direct",
        digest_validate: true,
      }),
    );
    const mnt = join(dir, "mnt");
    const sock = join(dir, "api.sock");
    const proc = spawnProcess({
      cmd: [requireBinary(), "nydusd", "fuse", "--config", config, "--bootstrap", BOOT, "--mountpoint", mnt, "--apisock", sock, "--log-level", "debug"],
      logFile: join(dir, "nydusd.log"),
      env: { PATH: SYSTEM_PATH, RAFSNAP_RUN_DIR: join(dir, "run") },
    });
    try {
      const state = async () => {
        try {
          const r = await fetch("http://localhost/api/v1/daemon", { unix: sock } as RequestInit);
          return ((await r.json()) as { state: string }).state;
        } catch {
          return "";
        }
      };
      await waitFor("nydusd RUNNING", async () => (await state()) === "RUNNING", 20_000, () => !proc.hasExited()).catch((e) => {
        throw new Error(`${e.message}\n${proc.logTail()}`);
      });
      expect((await run(["ls", mnt])).stdout.split("\n").filter(Boolean).sort()).toEqual(["lib.rs", "sync_io.rs"]);
      expect((await run(["sha256sum", join(mnt, "lib.rs")])).stdout.split(" ")[0]).toBe(LIB_SHA);
      const bc = (await (await fetch("http://localhost/api/v1/metrics/blobcache", { unix: sock } as RequestInit)).json()) as { underlying_files: string[] };
      expect(bc.underlying_files).toHaveLength(1);
      expect(bc.underlying_files[0]).toEndWith(".blob.data");
      expect(await proc.stop()).toBe(0);
      expect(mountsUnder(dir)).toEqual([]);
      expect(existsSync(join(dir, "run"))).toBe(true);
      expect(readFileSync(join(dir, "nydusd.log"), "utf8")).toContain("received SIGTERM");
    } finally {
      await proc.stop();
    }
  });

  test("shared mode: three instances mounted and unmounted through the API, metrics per id", async () => {
    const cfg = JSON.stringify({
      device: { backend: { type: "localfs", config: { dir: FIX } }, cache: { type: "blobcache", config: { work_dir: join(dir, "cache2") } } },
      digest_validate: true,
    });
    const mnt = join(dir, "shared");
    const sock = join(dir, "shared.sock");
    const proc = spawnProcess({
      cmd: [requireBinary(), "nydusd", "--apisock", sock, "fuse", "--mountpoint", mnt, "--log-level", "debug"],
      logFile: join(dir, "shared.log"),
      env: { PATH: SYSTEM_PATH, RAFSNAP_RUN_DIR: join(dir, "run") },
    });
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`http://localhost${path}`, { method, unix: sock, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);
    try {
      await waitFor("API", async () => (await api("GET", "/api/v1/daemon").catch(() => null))?.status === 200, 20_000, () => !proc.hasExited());
      expect(((await (await api("GET", "/api/v1/daemon")).json()) as { state: string }).state).toBe("RUNNING");
      for (const id of ["a", "b", "c"]) {
        const r = await api("POST", `/api/v1/mount?mountpoint=/${id}`, { fs_type: "rafs", source: BOOT, config: cfg });
        expect(r.status).toBe(204);
      }
      for (const id of ["a", "b", "c"]) expect((await run(["sha256sum", join(mnt, id, "lib.rs")])).stdout.split(" ")[0]).toBe(LIB_SHA);
      const m = (await (await api("GET", "/api/v1/metrics?id=/b")).json()) as { id: string; data_read: number };
      expect(m.id).toBe("/b");
      expect((await api("GET", "/api/v1/metrics")).status).toBe(404); // several instances: name one
      for (const id of ["a", "b", "c"]) expect((await api("DELETE", `/api/v1/mount?mountpoint=/${id}`)).status).toBe(204);
      expect(mountsUnder(mnt)).toEqual([]);
      expect((await api("DELETE", "/api/v1/mount?mountpoint=/a")).status).toBe(404);
    } finally {
      expect(await proc.stop()).toBe(0);
    }
  });

  test("the nydusd command line: --version lines, singleton refused, bad bootstrap refused", async () => {
    const link = join(dir, "nydusd");
    symlinkSync(requireBinary(), link);
    const v = await run([link, "--version"], { env: { PATH: SYSTEM_PATH } });
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^Version: \t.*\nGit Commit: \t.*\nBuild Time: \t.*\nProfile: \t.*\nRustc: \t.*\n$/);
    const single = await rafsnapCli(["nydusd", "singleton", "--fscache", "/tmp"]);
    expect(single.code).not.toBe(0);
    expect(single.stderr).toContain("fscache is not supported");
    const bad = join(dir, "bad.boot");
    writeFileSync(bad, new Uint8Array(8192));
    const cfg = join(dir, "config.json");
    const r = await run([requireBinary(), "nydusd", "fuse", "--config", cfg, "--bootstrap", bad, "--mountpoint", join(dir, "m2")], {
      env: { PATH: SYSTEM_PATH, RAFSNAP_RUN_DIR: join(dir, "run") },
      timeoutMs: 20_000,
    });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}: rafs: superblock`);
    expect(mountsUnder(dir)).toEqual([]);
    // no daemon's private run directory (blobfs mountpoint) is left: the failed one removed its own
    expect(readdirSync(join(dir, "run")).filter((n) => n.startsWith("nydusd-"))).toEqual([]);
  });
});
