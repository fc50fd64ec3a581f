// `rafsnap serve` whose log file cannot be written (it is /dev/full: every write fails with
// ENOSPC, as on a full root): every call is answered, the log lines go to stderr, and SIGTERM
// stops it cleanly. (A full disk used to make the gRPC callbacks throw, leaving calls
// unanswered, and the SIGTERM handler's own log line threw too.)
import { expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { socketAccepts } from "../../src/mount/index.ts";
import { signal, spawnProcess, waitFor } from "../harness/process.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";
import { tempDir, removeDir } from "../support/rafsnap.ts";
import { snapshotsClient } from "../support/snapshots-client.ts";

test("a log on a full device: every call answers, SIGTERM stops the server", async () => {
  const dir = tempDir("rafsnap-logfull-");
  const logs = join(dir, "logs");
  mkdirSync(logs);
  symlinkSync("/dev/full", join(logs, "nydus-snapshotter.log"));
  writeFileSync(join(dir, "config.toml"), `version = 1\n[log]\ndir = ${JSON.stringify(logs)}\nlog_to_stdout = false\nlevel = "debug"\n`);
  const socket = join(dir, "s.sock");
  const proc = spawnProcess({
    cmd: [requireBinary(), "serve", "--config", join(dir, "config.toml"), "--root", join(dir, "root"), "--address", socket],
    logFile: join(dir, "stderr.log"),
    env: { PATH: SYSTEM_PATH },
  });
  try {
    await waitFor(
      `${socket} accepting`,
      () => socketAccepts(socket),
      20_000,
      () => !proc.hasExited(),
    );
    const c = snapshotsClient(socket);
    // Failing calls log errors: each must still get its answer.
    const codes = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        try {
          await c.stat({ key: `missing-${i}` });
          return undefined;
        } catch (e) {
          return e instanceof ConnectError ? e.code : -1;
        }
      }),
    );
    expect(codes.every((k) => k === Code.NotFound)).toBe(true);
    await c.prepare({ key: "a", parent: "" });
    expect((await c.stat({ key: "a" })).info?.name).toBe("a");
    signal(proc.pid, "SIGTERM");
    expect(await Promise.race([proc.exited, Bun.sleep(15_000).then(() => "hung")])).toBe(0);
    // The lines went to stderr instead.
    expect(readFileSync(join(dir, "stderr.log"), "utf8")).toContain("missing-1");
  } finally {
    await proc.stop();
    removeDir(dir);
  }
});
