import { asc, eq, gt, sql } from "drizzle-orm";
import { alreadyExists, failedPrecondition, internal, invalidArgument, notFound } from "../errdefs/index.ts";
import type { Clock } from "./clock.ts";
import type { Db } from "./db.ts";
import { snapshots, type SnapshotRow } from "./schema.ts";
import type { Info, Kind, Snapshot, Usage } from "./types.ts";

const p = sql.placeholder;
/** A placeholder as an SQL value: drizzle's `update().set()` types do not take placeholders. */
const v = (name: string) => sql`${p(name)}`;

/**
 * The statements the metadata operations run, built with drizzle and prepared once per
 * database: preparing (and building) SQL on every call cost more CPU than the rest of a
 * snapshot call together (measured with `bun --cpu-prof` under bench/snapshot-ops.ts).
 */
function prepareQueries(db: Db) {
  return {
    rowByKey: db
      .select()
      .from(snapshots)
      .where(eq(snapshots.key, p("key")))
      .prepare(),
    keyById: db
      .select({ key: snapshots.key })
      .from(snapshots)
      .where(eq(snapshots.id, p("id")))
      .prepare(),
    childOf: db
      .select({ key: snapshots.key })
      .from(snapshots)
      .where(eq(snapshots.parentId, p("id")))
      .limit(1)
      .prepare(),
    // Recursive CTEs have no drizzle builder for SQLite; this one is plain SQL on the same
    // connection, prepared once by bun:sqlite.
    chain: db.$client.query<{ id: number }, [number]>(
      `WITH RECURSIVE chain(id, parent_id, depth) AS (
         SELECT id, parent_id, 0 FROM snapshots WHERE id = ?1
         UNION ALL
         SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id
       ) SELECT id FROM chain ORDER BY depth`,
    ),
    page: db
      .select()
      .from(snapshots)
      .where(gt(snapshots.key, p("after")))
      .orderBy(asc(snapshots.key))
      .limit(p("limit"))
      .prepare(),
    ids: db.select({ id: snapshots.id, key: snapshots.key }).from(snapshots).prepare(),
    insert: db
      .insert(snapshots)
      .values({
        key: p("key"),
        parentId: p("parentId"),
        kind: p("kind"),
        labels: p("labels"),
        createdAt: p("now"),
        updatedAt: p("now"),
      })
      .returning({ id: snapshots.id })
      .prepare(),
    setLabels: db
      .update(snapshots)
      .set({ labels: v("labelsJson"), updatedAt: v("now") })
      .where(eq(snapshots.id, p("id")))
      .prepare(),
    commit: db
      .update(snapshots)
      .set({
        key: v("name"),
        parentId: v("parentId"),
        kind: "committed",
        labels: v("labelsJson"),
        createdAt: v("now"),
        updatedAt: v("now"),
        size: v("size"),
        inodes: v("inodes"),
      })
      .where(eq(snapshots.id, p("id")))
      .prepare(),
    delete: db
      .delete(snapshots)
      .where(eq(snapshots.id, p("id")))
      .prepare(),
  };
}

type Queries = ReturnType<typeof prepareQueries>;

/**
 * Snapshot metadata with the semantics of containerd's `snapshots/storage` (bolt.go), on
 * SQLite. All access goes through {@link MetaStore.read} / {@link MetaStore.write}, whose
 * callbacks are synchronous: a SQLite transaction here commits when the callback returns,
 * so an `await` inside would commit early. Do async work before or after.
 */
export class MetaStore {
  private readonly q: Queries;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {
    this.q = prepareQueries(db);
  }

  /**
   * Runs `fn` over a consistent view of the data. No SQLite transaction is needed for that:
   * `fn` is synchronous and this process is the database's only user (one connection on one
   * JS thread; the root is locked, see `lockFile`), so no write can land between its
   * statements — and skipping BEGIN/COMMIT matters on Stat/Mounts, the hottest calls.
   */
  read<T>(fn: (tx: MetaTx) => T): T {
    return fn(new MetaTx(this.q, this.clock));
  }

  /**
   * Runs `fn` in a write transaction taken immediately (writers are serialised). If `fn`
   * throws, nothing it wrote is kept and the error propagates.
   */
  write<T>(fn: (tx: MetaTx) => T): T {
    return this.db.$client.transaction(() => fn(new MetaTx(this.q, this.clock))).immediate();
  }

  /** Closes the database; later calls throw. */
  close(): void {
    this.db.$client.close();
  }
}

/**
 * Metadata operations inside one transaction (only valid within the callback of
 * {@link MetaStore.read}/{@link MetaStore.write}). Errors carry containerd's kinds.
 */
export class MetaTx {
  constructor(
    private readonly q: Queries,
    private readonly clock: Clock,
  ) {}

  private row(key: string): SnapshotRow | undefined {
    return this.q.rowByKey.get({ key });
  }

  private mustRow(key: string): SnapshotRow {
    const r = this.row(key);
    if (!r) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`);
    return r;
  }

  /** Ids of `id` and its ancestors, nearest first. */
  private chain(id: number): string[] {
    return this.q.chain.all(id).map((r) => String(r.id));
  }

  private parentName(r: SnapshotRow): string {
    if (r.parentId == null) return "";
    return this.q.keyById.get({ id: r.parentId })?.key ?? "";
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
    const inserted = this.q.insert.get({ key, parentId, kind, labels: storedLabels(key, labels), now: this.clock() });
    if (!inserted) throw internal(`insert of snapshot ${JSON.stringify(key)} returned no id`);
    return {
      id: String(inserted.id),
      kind,
      parentIds: parentId == null ? [] : this.chain(parentId),
    };
  }

  /**
   * The active or view snapshot `key` with its parent chain and labels. NotFound when missing,
   * FailedPrecondition when it is committed.
   */
  getSnapshot(key: string): Snapshot & { labels: Record<string, string> } {
    const r = this.mustRow(key);
    if (r.kind === "committed") {
      throw failedPrecondition(`snapshot ${JSON.stringify(key)} is committed, not active or view`);
    }
    return { id: String(r.id), kind: r.kind, parentIds: r.parentId == null ? [] : this.chain(r.parentId), labels: r.labels };
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
    const stored = storedLabels(info.name, labels);
    this.q.setLabels.run({ labelsJson: JSON.stringify(stored), now: updated, id: r.id });
    return this.toInfo({ ...r, labels: stored, updatedAt: updated }, this.parentName(r));
  }

  /**
   * At most `limit` snapshots whose names sort after `after`, ordered by name (bolt iterates
   * keys in byte order; SQLite's BINARY collation does the same).
   */
  walkPage(after: string, limit: number): Info[] {
    return this.q.page.all({ after, limit }).map((r) => this.toInfo(r, this.parentName(r)));
  }

  /** Key of one child of snapshot `key`, or undefined; NotFound when `key` is missing. */
  firstChild(key: string): string | undefined {
    return this.q.childOf.get({ id: this.mustRow(key).id })?.key;
  }

  /**
   * Deletes snapshot `key`. NotFound when missing; FailedPrecondition when another snapshot
   * has it as parent. Returns its id and kind so the caller can remove its directory.
   */
  remove(key: string): { id: string; kind: Kind } {
    const r = this.mustRow(key);
    const child = this.q.childOf.get({ id: r.id });
    if (child) {
      throw failedPrecondition(`cannot remove snapshot ${JSON.stringify(key)}: it has a child snapshot ${JSON.stringify(child.key)}`);
    }
    this.q.delete.run({ id: r.id });
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
    this.q.commit.run({
      name,
      parentId,
      labelsJson: JSON.stringify(storedLabels(name, labels)),
      now: this.clock(),
      size: usage.size,
      inodes: usage.inodes,
      id: r.id,
    });
    return String(r.id);
  }

  /** Map of every snapshot id to its key, for reconciling `<root>/snapshots/`. */
  idMap(): Map<string, string> {
    const rows = this.q.ids.all();
    return new Map(rows.map((r) => [String(r.id), r.key]));
  }
}

/**
 * The most bytes of labels (keys and values together) one snapshot may hold. containerd caps
 * each label at 4096 bytes (checked in src/snapshot/labels.ts); without a total, Updates of
 * `labels.<key>` paths grew one snapshot to 20 MB and every List (containerd's GC) failed.
 */
export const MAX_LABELS_TOTAL_BYTES = 64 << 10;

/**
 * The labels to store for snapshot `name`: empty values dropped (containerd deletes a label
 * set to ""). InvalidArgument naming the snapshot and the limit, before anything is stored,
 * when they hold more than {@link MAX_LABELS_TOTAL_BYTES}.
 */
function storedLabels(name: string, labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  let total = 0;
  for (const [k, v] of Object.entries(labels)) {
    if (v === "") continue;
    out[k] = v;
    total += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (total > MAX_LABELS_TOTAL_BYTES) {
    throw invalidArgument(
      `snapshot ${JSON.stringify(name.slice(0, 200))}: its labels would hold ${total} bytes, more than the ${MAX_LABELS_TOTAL_BYTES} allowed in all`,
    );
  }
  return out;
}
