import { asc, eq } from "drizzle-orm";
import { alreadyExists, notFound } from "../errdefs/index.ts";
import type { Clock } from "./clock.ts";
import type { Db } from "./db.ts";
import { type DaemonRow, daemons, type InstanceRow, instances, readiness, type ReadinessRow } from "./schema.ts";

/** A daemon record without its creation time (the store sets it). */
export type NewDaemon = Omit<DaemonRow, "createdAt">;
/** An instance record without the fields the store sets (sequence, time, check status). */
export type NewInstance = Omit<InstanceRow, "seq" | "createdAt" | "status" | "problem">;
/** One finding of a readiness check. */
export type Finding = Pick<ReadinessRow, "subject" | "problem" | "fix">;

/**
 * The daemon manager's records (docs/compat.md §4.7) in the same SQLite database as the
 * snapshots: daemons, RAFS instances (with a sequence number that orders re-mounts) and the
 * findings of the last readiness check. Every method is one statement or one transaction;
 * errors carry containerd's kinds (AlreadyExists for a duplicate id, NotFound for a missing
 * one).
 */
export class DaemonStore {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  /** Every daemon, oldest first. */
  listDaemons(): DaemonRow[] {
    return this.db.select().from(daemons).orderBy(asc(daemons.createdAt), asc(daemons.id)).all();
  }

  /** The daemon `id`, or undefined. */
  getDaemon(id: string): DaemonRow | undefined {
    return this.db.select().from(daemons).where(eq(daemons.id, id)).get();
  }

  /** Records a new daemon; AlreadyExists when the id is taken. */
  addDaemon(d: NewDaemon): DaemonRow {
    if (this.getDaemon(d.id)) throw alreadyExists(`daemon ${d.id} already exists`);
    const row = { ...d, createdAt: this.clock() };
    this.db.insert(daemons).values(row).run();
    return row;
  }

  /** Records the pid of a (re)started daemon; NotFound when the daemon is unknown. */
  setDaemonPid(id: string, pid: number): void {
    if (!this.getDaemon(id)) throw notFound(`daemon ${id} does not exist`);
    this.db.update(daemons).set({ pid }).where(eq(daemons.id, id)).run();
  }

  /** Records the API socket of a daemon after a hot upgrade; NotFound when the daemon is unknown. */
  setDaemonApiSocket(id: string, apiSocket: string): void {
    if (!this.getDaemon(id)) throw notFound(`daemon ${id} does not exist`);
    this.db.update(daemons).set({ apiSocket }).where(eq(daemons.id, id)).run();
  }

  /** Deletes a daemon and its instances in one transaction (nothing when it is unknown). */
  removeDaemon(id: string): void {
    this.db.$client
      .transaction(() => {
        this.db.delete(instances).where(eq(instances.daemonId, id)).run();
        this.db.delete(daemons).where(eq(daemons.id, id)).run();
      })
      .immediate();
  }

  /** Every instance in sequence order (the order a shared daemon re-mounts them). */
  listInstances(): InstanceRow[] {
    return this.db.select().from(instances).orderBy(asc(instances.seq)).all();
  }

  /** The instance of snapshot `snapshotId`, or undefined. */
  getInstance(snapshotId: string): InstanceRow | undefined {
    return this.db.select().from(instances).where(eq(instances.snapshotId, snapshotId)).get();
  }

  /**
   * Records an instance with the next sequence number; AlreadyExists when the snapshot has
   * one.
   */
  addInstance(i: NewInstance): InstanceRow {
    return this.db.$client
      .transaction(() => {
        if (this.getInstance(i.snapshotId)) throw alreadyExists(`RAFS instance ${i.snapshotId} already exists`);
        const last = this.db.select({ seq: instances.seq }).from(instances).orderBy(asc(instances.seq)).all().at(-1);
        const row: InstanceRow = { ...i, seq: (last?.seq ?? 0) + 1, createdAt: this.clock(), status: "ready", problem: null };
        this.db.insert(instances).values(row).run();
        return row;
      })
      .immediate();
  }

  /** Updates the blob ids an instance reads. */
  setInstanceBlobs(snapshotId: string, blobIds: string[]): void {
    this.db.update(instances).set({ blobIds }).where(eq(instances.snapshotId, snapshotId)).run();
  }

  /** Marks an instance `broken` with the problem found, or `ready` again (problem null). */
  setInstanceStatus(snapshotId: string, problem: string | null): void {
    this.db
      .update(instances)
      .set({ status: problem === null ? "ready" : "broken", problem })
      .where(eq(instances.snapshotId, snapshotId))
      .run();
  }

  /** Deletes the instance of `snapshotId` (nothing when there is none). */
  removeInstance(snapshotId: string): void {
    this.db.delete(instances).where(eq(instances.snapshotId, snapshotId)).run();
  }

  /** Replaces the findings of the readiness check with `findings`, in one transaction. */
  replaceFindings(findings: Finding[]): void {
    const checkedAt = this.clock();
    this.db.$client
      .transaction(() => {
        this.db.delete(readiness).run();
        for (const f of findings)
          this.db
            .insert(readiness)
            .values({ ...f, checkedAt })
            .run();
      })
      .immediate();
  }

  /** Findings of the last readiness check. */
  findings(): ReadinessRow[] {
    return this.db.select().from(readiness).orderBy(asc(readiness.id)).all();
  }
}
