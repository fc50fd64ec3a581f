import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { embeddedMigrations, journalTags } from "./migrations.ts";

test("every drizzle-kit migration on disk is in the journal and embedded", () => {
  const onDisk = readdirSync(join(import.meta.dir, "migrations"))
    .filter((f) => f.endsWith(".sql"))
    .map((f) => f.replace(/\.sql$/, ""))
    .sort();
  expect(journalTags.slice().sort()).toEqual(onDisk);
  const ms = embeddedMigrations();
  expect(ms.map((m) => m.tag)).toEqual(journalTags);
  for (const m of ms) expect(m.statements.length).toBeGreaterThan(0);
});
