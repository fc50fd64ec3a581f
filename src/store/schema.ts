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

/**
 * One row per nydusd daemon the manager started (docs/compat.md §4.7 `ConfigState`): enough to
 * find it again after a restart (API socket, pid), start it again with the same command line
 * (mode, mountpoint, config dir, log settings) and hand it to a supervisor.
 */
export const daemons = sqliteTable("daemons", {
  id: text("id").primaryKey(),
  pid: integer("pid").notNull().default(0),
  apiSocket: text("api_socket").notNull(),
  mode: text("mode", { enum: ["dedicated", "shared"] }).notNull(),
  fsDriver: text("fs_driver").notNull(),
  mountpoint: text("mountpoint").notNull(),
  configDir: text("config_dir").notNull(),
  /** `--bootstrap` of a dedicated daemon; null for a shared one. */
  bootstrap: text("bootstrap"),
  supervisorPath: text("supervisor_path"),
  logDir: text("log_dir").notNull(),
  logLevel: text("log_level").notNull(),
  logToStdout: integer("log_to_stdout", { mode: "boolean" }).notNull(),
  logRotationSize: integer("log_rotation_size").notNull().default(0),
  threadNum: integer("thread_num").notNull().default(0),
  failoverPolicy: text("failover_policy").notNull(),
  createdAt: integer("created_at").notNull(),
});

/** A row of {@link daemons}. */
export type DaemonRow = typeof daemons.$inferSelect;

/**
 * One row per RAFS instance (an image mounted for a nydus meta snapshot; §4.7). `seq` orders
 * re-mounts of a shared daemon's instances; `status` is what the last readiness check found
 * (`ready`, or `broken` with `problem` naming what is wrong and how to fix it).
 */
export const instances = sqliteTable(
  "instances",
  {
    snapshotId: text("snapshot_id").primaryKey(),
    seq: integer("seq").notNull().unique(),
    imageId: text("image_id").notNull(),
    daemonId: text("daemon_id")
      .notNull()
      .references(() => daemons.id, { onDelete: "restrict" }),
    fsDriver: text("fs_driver").notNull(),
    snapshotDir: text("snapshot_dir").notNull(),
    bootstrap: text("bootstrap").notNull(),
    mountpoint: text("mountpoint").notNull(),
    /** Blob ids the instance reads (its cache files); null while unknown. */
    blobIds: text("blob_ids", { mode: "json" }).$type<string[]>(),
    annotations: text("annotations", { mode: "json" }).$type<Record<string, string>>().notNull().default({}),
    status: text("status", { enum: ["ready", "broken"] })
      .notNull()
      .default("ready"),
    problem: text("problem"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("instances_daemon_id_idx").on(t.daemonId)],
);

/** A row of {@link instances}. */
export type InstanceRow = typeof instances.$inferSelect;

/**
 * Findings of the last readiness check at start (one row per problem; replaced each start):
 * what failed (`subject`: a snapshot, instance or daemon), what is wrong and the fix.
 */
export const readiness = sqliteTable("readiness", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  subject: text("subject").notNull(),
  problem: text("problem").notNull(),
  fix: text("fix").notNull(),
  checkedAt: integer("checked_at").notNull(),
});

/** A row of {@link readiness}. */
export type ReadinessRow = typeof readiness.$inferSelect;
