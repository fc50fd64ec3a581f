import { internal } from "../errdefs/index.ts";
import journal from "./migrations/meta/_journal.json" with { type: "json" };
import m0000 from "./migrations/0000_init.sql" with { type: "text" };
import m0001 from "./migrations/0001_daemons.sql" with { type: "text" };

/** One migration as drizzle-kit wrote it: its journal tag, time and SQL statements. */
export interface Migration {
  tag: string;
  /** `when` of the journal entry, ms since the epoch; drizzle records it as `created_at`. */
  when: number;
  /** sha256 of the SQL file, as drizzle's migrator records it. */
  hash: string;
  statements: string[];
}

/**
 * The SQL files of `./migrations/`, imported as text so `bun build --compile` embeds them
 * (drizzle's own migrator reads them from disk at run time, which a single binary cannot).
 * A new drizzle-kit migration must be added here; `migrations.test.ts` fails until it is.
 */
const SQL_BY_TAG: Record<string, string> = {
  "0000_init": m0000,
  "0001_daemons": m0001,
};

/** The journal's tags, in order, for the completeness test. */
export const journalTags: string[] = journal.entries.map((e) => e.tag);

/**
 * The embedded migrations in journal order. Throws when the journal names a migration whose
 * SQL is not embedded (a build mistake, caught by the test).
 */
export function embeddedMigrations(): Migration[] {
  return journal.entries.map((e) => {
    const sql = SQL_BY_TAG[e.tag];
    if (sql === undefined) throw internal(`migration ${e.tag} is in the journal but not embedded`);
    return {
      tag: e.tag,
      when: e.when,
      hash: new Bun.CryptoHasher("sha256").update(sql).digest("hex"),
      statements: sql
        .split("--> statement-breakpoint")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    };
  });
}
