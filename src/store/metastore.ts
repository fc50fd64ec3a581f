import { asc, eq, sql } from "drizzle-orm";
import type { SQLiteTransaction } from "drizzle-orm/sqlite-core";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../errdefs/index.ts";
import type { Clock } from "./clock.ts";
import type { Db } from "./db.ts";
import { snapshots, type SnapshotRow } from "./schema.ts";
import type { Info, Kind, Snapshot, Usage } from "./types.ts";

// biome-ignore lint: drizzle's transaction type has four type parameters we do not use.
type Tx = SQLiteTransaction<"sync", void, any, any>;

/**
 * Snapshot metadata with the semantics of containerd's `snapshots/storage` (bolt.go), on
 * SQLite. All access goes through {@link MetaStore.read} / {@link MetaStore.write}, whose
 * callbacks are synchronous: drizzle's bun-sqlite transactions commit when the callback
 * returns, so an `await` inside would commit early. Do async work before or after.
 */
export class MetaStore {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  /** Runs `fn` in a read transaction (a consistent snapshot of the data). */
  read<T>(fn: (tx: MetaTx) => T): T {
    return this.db.transaction((tx) => fn(new MetaTx(tx as unknown as Tx, this.clock)), { behavior: "deferred" });
  }

  /**
   * Runs `fn` in a write transaction taken immediately (writers are serialised). If `fn`
   * throws, nothing it wrote is kept and the error propagates.
   */
  write<T>(fn: (tx: MetaTx) => T): T {
    return this.db.transaction((tx) => fn(new MetaTx(tx as unknown as Tx, this.clock)), { behavior: "immediate" });
  }

  /** Closes the database; later calls throw. */
  close(): void {
    this.db.$client.close();
  }
}

/** Metadata operations inside one transaction. Errors carry containerd's kinds. */
export class MetaTx {
  constructor(
    private readonly tx: Tx,
    private readonly clock: Clock,
  ) {}

  private row(key: string): SnapshotRow | undefined {
    return this.tx.select().from(snapshots).where(eq(snapshots.key, key)).get();
  }

  private mustRow(key: string): SnapshotRow {
    const r = this.row(key);
    if (!r) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`);
    return r;
  }

  /** Ids of `id` and its ancestors, nearest first. */
  private chain(id: number): string[] {
    const rows = this.tx.all<{ id: number }>(sql`
      WITH RECURSIVE chain(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM snapshots WHERE id = ${id}
        UNION ALL
        SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id
      ) SELECT id FROM chain ORDER BY depth`);
    return rows.map((r) => String(r.id));
  }

  private parentName(r: SnapshotRow): string {
    if (r.parentId == null) return "";
    const p = this.tx.select({ key: snapshots.key }).from(snapshots).where(eq(snapshots.id, r.parentId)).get();
    return p?.key ?? "";
  }

  private toInfo(r: SnapshotRow, parent: string): Info {
    return {
      name: r.key,
      parent,
      kind: r.kind,
      labels: { ...r.labels },
      created: r.createdAt,
      updated: r.updatedAt,
    };
  }

  /**
   * Inserts an active or view snapshot under `key` on top of the committed `parent` ("" for
   * none). NotFound when the parent does not exist, InvalidArgument when it is not
   * committed, AlreadyExists when `key` is taken.
   */
  createSnapshot(kind: Kind, key: string, parent: string, labels: Record<string, string>): Snapshot {
    if (kind !== "active" && kind !== "view") {
      throw invalidArgument(`snapshot type ${kind} invalid; only active or view snapshots can be created`);
    }
    let parentId: number | null = null;
    if (parent !== "") {
      const p = this.row(parent);
      if (!p) throw notFound(`parent snapshot ${JSON.stringify(parent)} of ${JSON.stringify(key)} does not exist`);
      if (p.kind !== "committed") {
        throw invalidArgument(`parent ${JSON.stringify(parent)} of ${JSON.stringify(key)} is not a committed snapshot`);
      }
      parentId = p.id;
    }
    if (this.row(key)) throw alreadyExists(`snapshot ${JSON.stringify(key)} already exists`);
    const now = this.clock();
    const inserted = this.tx
      .insert(snapshots)
      .values({ key, parentId, kind, labels: dropEmpty(labels), createdAt: now, updatedAt: now })
      .returning({ id: snapshots.id })
      .get();
    return {
      id: String(inserted.id),
      kind,
      parentIds: parentId == null ? [] : this.chain(parentId),
    };
  }

  /**
   * The active or view snapshot `key` with its parent chain. NotFound when missing,
   * FailedPrecondition when it is committed.
   */
  getSnapshot(key: string): Snapshot {
    const r = this.mustRow(key);
    if (r.kind === "committed") {
      throw failedPrecondition(`snapshot ${JSON.stringify(key)} is committed, not active or view`);
    }
    return { id: String(r.id), kind: r.kind, parentIds: r.parentId == null ? [] : this.chain(r.parentId) };
  }

  /** Id, info and stored usage of any snapshot. NotFound when missing. */
  getInfo(key: string): { id: string; info: Info; usage: Usage } {
    const r = this.mustRow(key);
    return { id: String(r.id), info: this.toInfo(r, this.parentName(r)), usage: { size: r.size, inodes: r.inodes } };
  }

  /**
   * Updates the mutable fields of `info.name`: with no field paths all labels are replaced;
   * `labels` replaces all labels; `labels.<k>` sets (or, with an empty value, removes) one
   * label. Any other path is InvalidArgument. Labels with empty values are dropped, as
   * containerd does. Returns the stored info.
   */
  updateInfo(info: Info, fieldpaths: string[]): Info {
    const r = this.mustRow(info.name);
    let labels: Record<string, string> = { ...r.labels };
    if (fieldpaths.length === 0) {
      labels = { ...info.labels };
    } else {
      for (const path of fieldpaths) {
        if (path.startsWith("labels.")) {
          const k = path.slice("labels.".length);
          labels[k] = info.labels[k] ?? "";
        } else if (path === "labels") {
          labels = { ...info.labels };
        } else {
          throw invalidArgument(`cannot update ${JSON.stringify(path)} field on snapshot ${JSON.stringify(info.name)}`);
        }
      }
    }
    const updated = this.clock();
    const stored = dropEmpty(labels);
    this.tx.update(snapshots).set({ labels: stored, updatedAt: updated }).where(eq(snapshots.id, r.id)).run();
    return this.toInfo({ ...r, labels: stored, updatedAt: updated }, this.parentName(r));
  }

  /** Every snapshot's info, ordered by name (bolt iterates keys in byte order). */
  walk(): Info[] {
    const rows = this.tx.select().from(snapshots).orderBy(asc(snapshots.key)).all();
    const names = new Map(rows.map((r) => [r.id, r.key]));
    return rows.map((r) => this.toInfo(r, r.parentId == null ? "" : (names.get(r.parentId) ?? "")));
  }

  /**
   * Deletes snapshot `key`. NotFound when missing; FailedPrecondition when another snapshot
   * has it as parent. Returns its id and kind so the caller can remove its directory.
   */
  remove(key: string): { id: string; kind: Kind } {
    const r = this.mustRow(key);
    const child = this.tx.select({ key: snapshots.key }).from(snapshots).where(eq(snapshots.parentId, r.id)).limit(1).get();
    if (child) {
      throw failedPrecondition(
        `cannot remove snapshot ${JSON.stringify(key)}: it has a child snapshot ${JSON.stringify(child.key)}`,
      );
    }
    this.tx.delete(snapshots).where(eq(snapshots.id, r.id)).run();
    return { id: String(r.id), kind: r.kind };
  }

  /**
   * Turns the active snapshot `key` into the committed snapshot `name`, recording `usage`
   * and replacing its labels with `labels` (not inherited, as containerd does). The id and
   * the children's links stay. AlreadyExists when `name` is taken, NotFound when `key` is
   * missing, FailedPrecondition when `key` is not active.
   *
   * `parent` (containerd ≥ 2.2 sends it for parallel unpack, where layers are unpacked
   * without parents) sets the committed snapshot's parent: it must exist and be committed
   * (NotFound / InvalidArgument), and an active snapshot that already has a different parent
   * is InvalidArgument. "" keeps the parent the snapshot was prepared with.
   */
  commitActive(key: string, name: string, usage: Usage, labels: Record<string, string>, parent = ""): string {
    if (this.row(name)) throw alreadyExists(`committed snapshot ${JSON.stringify(name)} already exists`);
    const r = this.row(key);
    if (!r) throw notFound(`active snapshot ${JSON.stringify(key)} does not exist`);
    if (r.kind !== "active") throw failedPrecondition(`snapshot ${JSON.stringify(key)} is ${r.kind}, not active`);
    let parentId = r.parentId;
    if (parent !== "") {
      const p = this.row(parent);
      if (!p) throw notFound(`parent snapshot ${JSON.stringify(parent)} of ${JSON.stringify(name)} does not exist`);
      if (p.kind !== "committed") {
        throw invalidArgument(`parent ${JSON.stringify(parent)} of ${JSON.stringify(name)} is not a committed snapshot`);
      }
      if (r.parentId != null && r.parentId !== p.id) {
        throw invalidArgument(`snapshot ${JSON.stringify(key)} was prepared on another parent than ${JSON.stringify(parent)}`);
      }
      parentId = p.id;
    }
    const now = this.clock();
    this.tx
      .update(snapshots)
      .set({
        key: name,
        parentId,
        kind: "committed",
        labels: dropEmpty(labels),
        createdAt: now,
        updatedAt: now,
        size: usage.size,
        inodes: usage.inodes,
      })
      .where(eq(snapshots.id, r.id))
      .run();
    return String(r.id);
  }

  /** Map of every snapshot id to its key, for reconciling `<root>/snapshots/`. */
  idMap(): Map<string, string> {
    const rows = this.tx.select({ id: snapshots.id, key: snapshots.key }).from(snapshots).all();
    return new Map(rows.map((r) => [String(r.id), r.key]));
  }
}

function dropEmpty(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (v !== "") out[k] = v;
  return out;
}
