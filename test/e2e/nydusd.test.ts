// `rafsnap nydusd` (the compiled binary, as root): nydusd's command line and HTTP API, the
// nydus fixture served from a localfs backend through blobfs + kernel EROFS, and a clean
// unmount on SIGTERM.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RafsImage } from "../../src/rafs/index.ts";
import { mountsUnder, unmountUnder } from "../harness/cleanup.ts";
import { run } from "../harness/process.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";
import { localfsConfig, startNydusd } from "../support/nydusd.ts";
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
    const d = await startNydusd(dir, "dedicated", localfsConfig(FIX, join(dir, "cache")), {
      bootstrap: BOOT,
      args: ["--log-level", "debug", "--thread-num", "3"],
    });
    try {
      expect((await run(["ls", d.mnt])).stdout.split("\n").filter(Boolean).sort()).toEqual(["lib.rs", "sync_io.rs"]);
      expect((await run(["sha256sum", join(d.mnt, "lib.rs")])).stdout.split(" ")[0]).toBe(LIB_SHA);
      const bc = (await (await d.api("GET", "/api/v1/metrics/blobcache")).json()) as { underlying_files: string[] };
      expect(bc.underlying_files).toHaveLength(1);
      expect(bc.underlying_files[0]).toEndWith(".blob.data");
      expect(await d.proc.stop()).toBe(0);
      expect(mountsUnder(dir)).toEqual([]);
      expect(existsSync(join(dir, "run"))).toBe(true);
      expect(readFileSync(join(dir, "dedicated.log"), "utf8")).toContain("received SIGTERM");
      expect(readFileSync(join(dir, "dedicated.log"), "utf8")).toContain("serving with 3 reader threads"); // --thread-num
    } finally {
      await d.proc.stop();
    }
  });

  test("shared mode: three instances mounted and unmounted through the API, metrics per id", async () => {
    const config = localfsConfig(FIX, join(dir, "cache2"));
    const d = await startNydusd(dir, "shared", config, { args: ["--log-level", "debug"] });
    try {
      expect(await d.state()).toBe("RUNNING");
      for (const id of ["a", "b", "c"]) {
        const r = await d.api("POST", `/api/v1/mount?mountpoint=/${id}`, { fs_type: "rafs", source: BOOT, config: JSON.stringify(config) });
        expect(r.status).toBe(204);
      }
      for (const id of ["a", "b", "c"]) expect((await run(["sha256sum", join(d.mnt, id, "lib.rs")])).stdout.split(" ")[0]).toBe(LIB_SHA);
      const m = (await (await d.api("GET", "/api/v1/metrics?id=/b")).json()) as { id: string; data_read: number };
      expect(m.id).toBe("/b");
      expect((await d.api("GET", "/api/v1/metrics")).status).toBe(404); // several instances: name one
      // log_level at run time: the daemon's loggers follow (a failed API call is logged at debug).
      expect((await d.api("PUT", "/api/v1/daemon", { log_level: "verbose" })).status).toBe(400);
      expect((await d.api("PUT", "/api/v1/daemon", { log_level: "error" })).status).toBe(204);
      expect((await d.api("PUT", "/api/v1/daemon", { log_level: "debug" })).status).toBe(204);
      const log = readFileSync(join(dir, "shared.log"), "utf8");
      expect(log).toContain("log level set to debug");
      expect(log).not.toContain("log level set to error"); // an info line while the level was error
      for (const id of ["a", "b", "c"]) expect((await d.api("DELETE", `/api/v1/mount?mountpoint=/${id}`)).status).toBe(204);
      expect(mountsUnder(d.mnt)).toEqual([]);
      expect((await d.api("DELETE", "/api/v1/mount?mountpoint=/a")).status).toBe(404);
    } finally {
      expect(await d.proc.stop()).toBe(0);
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
    const cfg = join(dir, "dedicated.json");
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
    // Flags the Go snapshotter passes are used, and checked.
    for (const [flag, value, says] of [
      ["--thread-num", "0", '--thread-num "0": a number of threads from 1 to 1024'],
      ["--failover-policy", "later", '--failover-policy "later": one of none, resend, flush'],
    ]) {
      const refused = await rafsnapCli(["nydusd", "fuse", "--mountpoint", join(dir, "m3"), flag as string, value as string]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(says as string);
    }
  });

  test("hostile bootstraps: a link to /dev/zero, a FIFO, a chunk-count bomb — refused before anything is read or fetched", async () => {
    const cfg = join(dir, "hostile.json");
    writeFileSync(cfg, JSON.stringify(localfsConfig(join(dir, "no-blobs"), join(dir, "hostile-cache"))));
    const image = RafsImage.open(new Uint8Array(readFileSync(BOOT)));
    const bomb = Buffer.from(readFileSync(BOOT));
    const at = image.ext.blobTableOffset;
    const count = (1 << 20) + 1;
    bomb.writeUInt32LE(count, at + 72); // chunk_count
    const v2 = (bomb.readUInt32LE(at + 84) & 0x4) !== 0;
    bomb.writeBigUInt64LE(BigInt(count * (v2 ? 24 : 16)), at + 128); // ci_uncompressed_size agrees
    writeFileSync(join(dir, "bomb.boot"), bomb);
    symlinkSync("/dev/zero", join(dir, "zero.boot"));
    execFileSync("mkfifo", [join(dir, "fifo.boot")]);
    const cases: [string, string][] = [
      ["zero.boot", "is not a regular file"],
      ["fifo.boot", "is not a regular file"],
      ["bomb.boot", `declares ${count} chunks, more than the 1048576 an image may have`],
    ];
    for (const [name, msg] of cases) {
      const r = await run([requireBinary(), "nydusd", "fuse", "--config", cfg, "--bootstrap", join(dir, name), "--mountpoint", join(dir, "m3")], {
        env: { PATH: SYSTEM_PATH, RAFSNAP_RUN_DIR: join(dir, "run") },
        timeoutMs: 20_000,
      });
      expect({ name, timedOut: r.timedOut, failed: r.code !== 0 }).toEqual({ name, timedOut: false, failed: true });
      expect(r.stderr).toContain(msg);
    }
    // Nothing fetched, cached or mounted.
    expect(existsSync(join(dir, "hostile-cache")) ? readdirSync(join(dir, "hostile-cache")) : []).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
  });
});
