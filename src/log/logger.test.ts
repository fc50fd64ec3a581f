import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, isLogLevelName, lineReporter, setLogLevel } from "./logger.ts";

test("a log that cannot be written never throws into the caller; the next line that can says how many were missed", () => {
  let fail = true;
  const written: string[] = [];
  const r = lineReporter((l) => {
    if (fail) throw Object.assign(new Error("no space"), { code: "ENOSPC" });
    written.push(l);
  });
  const ev = (msg: string) => ({ date: new Date(), type: "info", tag: "t", args: [msg], level: 3 }) as unknown as Parameters<typeof r.log>[0];
  expect(() => r.log(ev("one"), { options: {} } as never)).not.toThrow();
  expect(() => r.log(ev("two"), { options: {} } as never)).not.toThrow();
  fail = false;
  r.log(ev("three"), { options: {} } as never);
  expect(written.length).toBe(2);
  expect(written[0]).toContain("2 line(s) could not be written here (ENOSPC)");
  expect(written[1]).toContain("three");
});

test("a logger whose file is on a full device (/dev/full) keeps working, plain and rotating", () => {
  const dir = mkdtempSync(join(tmpdir(), "rafsnap-log-"));
  try {
    symlinkSync("/dev/full", join(dir, "full.log"));
    for (const rotation of [undefined, { maxBytes: 1 << 20, maxBackups: 2, maxAgeDays: 0, compress: false, localTime: false }]) {
      const log = createLogger({ level: "info", toStdout: false, file: join(dir, "full.log"), rotation });
      expect(() => log.error("the disk is full")).not.toThrow();
      expect(() => log.info("still answering")).not.toThrow();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("adjustable level (nydusd's log_level at run time)", () => {
  test("setLogLevel changes the logger and every logger made from it, made before or after", () => {
    const seen: string[] = [];
    const log = createLogger({
      level: "info",
      toStdout: false,
      file: "/dev/null",
      adjustable: true,
      reporter: { log: (ev) => void seen.push(`${ev.type}:${ev.args[0]}`) },
    });
    const early = log.withTag("blobfs");
    early.debug("d1");
    early.info("i1");
    setLogLevel(log, "debug");
    const late = log.withTag("api");
    early.debug("d2");
    late.debug("d3");
    setLogLevel(log, "warn");
    early.info("i2");
    late.warn("w1");
    expect(seen).toEqual(["info:i1", "debug:d2", "debug:d3", "warn:w1"]);
  });
  test("a logger that is not adjustable changes alone; names are checked", () => {
    const seen: string[] = [];
    const log = createLogger({ level: "info", toStdout: false, file: "/dev/null", reporter: { log: (ev) => void seen.push(String(ev.args[0])) } });
    setLogLevel(log, "debug");
    log.debug("d");
    expect(seen).toEqual(["d"]);
    expect(isLogLevelName("debug")).toBe(true);
    expect(isLogLevelName("verbose")).toBe(false);
  });
});
