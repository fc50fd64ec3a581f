// `rafsnap serve` whose log file cannot be written (it is /dev/full: every write fails with
// ENOSPC, as on a full root): every call is answered, the log lines go to stderr, and SIGTERM
// stops it cleanly. (A full disk used to make the gRPC callbacks throw, leaving calls
// unanswered, and the SIGTERM handler's own log line threw too.)
import { expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { signal } from "../harness/process.ts";
import { removeDir, startRafsnap, tempDir } from "../support/rafsnap.ts";

test("a log on a full device: every call answers, SIGTERM stops the server", async () => {
  const dir = tempDir("rafsnap-logfull-");
  const logs = join(dir, "logs");
  mkdirSync(logs);
  symlinkSync("/dev/full", join(logs, "nydus-snapshotter.log"));
  writeFileSync(join(dir, "config.toml"), `version = 1\n[log]\ndir = ${JSON.stringify(logs)}\nlog_to_stdout = false\nlevel = "debug"\n`);
  const srv = await startRafsnap(dir, { args: ["--config", join(dir, "config.toml")], configLogging: true });
  try {
    const c = srv.client;
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
    signal(srv.proc.pid, "SIGTERM");
    expect(await Promise.race([srv.proc.exited, Bun.sleep(15_000).then(() => "hung")])).toBe(0);
    // The lines went to stderr instead.
    expect(readFileSync(join(dir, "rafsnap.log"), "utf8")).toContain("missing-1");
  } finally {
    await srv.stop();
    removeDir(dir);
  }
});
