export { type Clock, type Micros, systemClock } from "./clock.ts";
export { type Db, openDb, openDbReadonly } from "./db.ts";
export { lockFile, type RootLock } from "./lock.ts";
export { MetaStore, MetaTx } from "./metastore.ts";
export { embeddedMigrations, journalTags, type Migration } from "./migrations.ts";
export type { Info, Kind, Snapshot, Usage } from "./types.ts";
export { DaemonStore, type Finding, type NewDaemon, type NewInstance } from "./daemons.ts";
export type { DaemonRow, InstanceRow, ReadinessRow } from "./schema.ts";
