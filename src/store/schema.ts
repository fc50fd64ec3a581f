import { type AnySQLiteColumn, index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * One row per snapshot, the metadata containerd's `storage.MetaStore` keeps in bolt.
 *
 * - `id` is the internal identifier and the directory name under `<root>/snapshots/`.
 *   AUTOINCREMENT: ids are never reused, so a directory left by a crash can never be
 *   mistaken for a later snapshot's.
 * - `key` is the active/view key, or the committed name once committed (Commit renames the
 *   row in place; children keep pointing at the same `id`).
 * - times are microseconds since the Unix epoch (UTC).
 * - `size`/`inodes` hold the usage recorded at Commit; zero for active snapshots, whose
 *   usage is measured on disk when asked.
 */
export const snapshots = sqliteTable(
  "snapshots",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    key: text("key").notNull().unique(),
    parentId: integer("parent_id").references((): AnySQLiteColumn => snapshots.id, { onDelete: "restrict" }),
    kind: text("kind", { enum: ["view", "active", "committed"] }).notNull(),
    labels: text("labels", { mode: "json" }).$type<Record<string, string>>().notNull().default({}),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    size: integer("size").notNull().default(0),
    inodes: integer("inodes").notNull().default(0),
  },
  (t) => [index("snapshots_parent_id_idx").on(t.parentId)],
);

/** A row of {@link snapshots}. */
export type SnapshotRow = typeof snapshots.$inferSelect;
