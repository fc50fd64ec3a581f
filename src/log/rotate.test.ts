import { afterEach, beforeEach, expect, test } from "bun:test";
import { gunzipSync } from "bun";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backupStamp, RotatingFile } from "./rotate.ts";

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-rotate-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("backup names carry lumberjack's timestamp", () => {
  expect(backupStamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)), false)).toBe("2026-01-02T03-04-05.006");
});

test("rotates before a line would overflow, keeps maxBackups newest, never loses a line", () => {
  let t = Date.UTC(2026, 0, 1);
  const f = new RotatingFile(
    join(dir, "x.log"),
    { maxBytes: 20, maxBackups: 2, maxAgeDays: 0, localTime: false, compress: false },
    () => new Date((t += 1000)),
  );
  const lines = Array.from({ length: 8 }, (_, i) => `line ${i} 123456\n`); // 14 bytes each
  for (const l of lines) f.write(l);
  const names = readdirSync(dir).sort();
  expect(names.length).toBe(3); // current + 2 backups
  expect(readFileSync(join(dir, "x.log"), "utf8")).toBe(lines[7] as string);
  const backups = f.backups();
  expect(backups.length).toBe(2);
  expect(readFileSync(join(dir, backups[0] as string), "utf8")).toBe(lines[6] as string);
  expect(statSync(join(dir, "x.log")).mode & 0o777).toBe(0o600);
});

test("compresses backups and drops those older than maxAgeDays", () => {
  const now = Date.UTC(2026, 5, 1);
  const old = join(dir, "x-2020-01-01T00-00-00.000.log");
  writeFileSync(old, "ancient\n");
  utimesSync(old, new Date(now - 40 * 86_400_000), new Date(now - 40 * 86_400_000));
  const f = new RotatingFile(join(dir, "x.log"), { maxBytes: 10, maxBackups: 0, maxAgeDays: 30, localTime: false, compress: true }, () => new Date(now));
  f.write("first line\n");
  f.write("second line\n");
  const backups = f.backups();
  expect(backups).toEqual(["x-2026-06-01T00-00-00.000.log.gz"]);
  expect(new TextDecoder().decode(gunzipSync(readFileSync(join(dir, backups[0] as string))))).toBe("first line\n");
});
