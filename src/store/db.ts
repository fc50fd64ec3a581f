import { constants, Database } from "bun:sqlite";
import { chmodSync, closeSync, openSync } from "node:fs";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { internal } from "../errdefs/index.ts";
import { embeddedMigrations, type Migration } from "./migrations.ts";
import * as schema from "./schema.ts";

/** The drizzle database over `bun:sqlite` with our schema. */
export type Db = BunSQLiteDatabase<typeof schema> & { $client: Database };

/**
 * Opens (creating if missing) the SQLite file at `path`, sets WAL journaling (the WAL files
 * kept across closes, so a full disk can still be opened for reads), mode 0600, `synchronous=FULL` (a committed snapshot survives power loss), foreign keys and a busy
 * timeout, and applies the embedded migrations that are not applied yet, each in its own
 * transaction. Throws Internal when the file cannot be opened or a migration fails; a
 * failed migration leaves the database as it was before it.
 */
export function openDb(path: string, migrations: Migration[] = embeddedMigrations()): Db {
  let client: Database;
  try {
    // The file holds every snapshot's labels: owner-only. SQLite gives the -wal and -shm
    // files the database file's mode.
    closeSync(openSync(path, "a", 0o600));
    chmodSync(path, 0o600);
    client = new Database(path, { create: true, readwrite: true, strict: true });
  } catch (e) {
    throw internal(`open database ${path}: ${(e as Error).message}`, e);
  }
  try {
    client.exec("PRAGMA journal_mode = WAL");
    // Keep the -wal and -shm files when the connection closes: opening again then creates
    // nothing, so rafsnap starts and serves reads on a full disk (writes get SQLITE_FULL →
    // RESOURCE_EXHAUSTED). Without it SQLite deletes them at close and cannot map a new -shm.
    client.fileControl(constants.SQLITE_FCNTL_PERSIST_WAL, 1);
    client.exec("PRAGMA synchronous = FULL");
    client.exec("PRAGMA foreign_keys = ON");
    client.exec("PRAGMA busy_timeout = 5000");
    migrate(client, migrations);
  } catch (e) {
    client.close();
    throw internal(`prepare database ${path}: ${(e as Error).message}`, e);
  }
  return drizzle({ client, schema }) as Db;
}

/**
 * Applies migrations newer than the last one recorded in `__drizzle_migrations`, the table
 * drizzle's own migrator keeps (same columns: hash, created_at = journal `when`), so the
 * drizzle-kit tooling recognises a database we migrated.
 */
function migrate(client: Database, migrations: Migration[]): void {
  client.exec("CREATE TABLE IF NOT EXISTS __drizzle_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, hash text NOT NULL, created_at numeric)");
  const last = client.query<{ created_at: number }, []>("SELECT created_at FROM __drizzle_migrations ORDER BY created_at DESC LIMIT 1").get();
  for (const m of migrations) {
    if (last && m.when <= Number(last.created_at)) continue;
    client
      .transaction(() => {
        for (const stmt of m.statements) client.exec(stmt);
        client.query("INSERT INTO __drizzle_migrations (hash, created_at) VALUES (?, ?)").run(m.hash, m.when);
      })
      .immediate();
  }
}

/**
 * Opens an existing database read-only, without migrating (for `rafsnap status` beside a
 * running server; WAL lets it read while the server writes). Throws NotFound-like Internal
 * naming the file when it cannot be opened.
 */
export function openDbReadonly(path: string): Db {
  let client: Database;
  try {
    client = new Database(path, { readonly: true, strict: true });
    client.exec("PRAGMA busy_timeout = 5000");
  } catch (e) {
    throw internal(`open database ${path} read-only: ${(e as Error).message}`, e);
  }
  return drizzle({ client, schema }) as Db;
}
