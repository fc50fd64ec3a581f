import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import { notFound } from "../errdefs/index.ts";
import { NydusdClient, pidAlive } from "../manager/index.ts";
import { isMountpoint } from "../mount/index.ts";
import { DaemonStore, type DaemonRow, type InstanceRow, openDbReadonly, type ReadinessRow, systemClock } from "../store/index.ts";
import { DB_FILE } from "./serve.ts";

/** What `rafsnap status` reports. */
export interface Status {
  root: string;
  daemons: (Pick<DaemonRow, "id" | "pid" | "mode" | "mountpoint" | "apiSocket"> & { state: string })[];
  instances: (Pick<InstanceRow, "snapshotId" | "imageId" | "daemonId" | "mountpoint" | "status" | "problem"> & { mounted: boolean })[];
  findings: Pick<ReadinessRow, "subject" | "problem" | "fix" | "checkedAt">[];
}

/**
 * Reads the daemons, RAFS instances and last readiness findings from `<root>/rafsnap.db`
 * (read-only, beside a running server) and asks each daemon for its state (`DEAD` when its
 * pid is gone, `NO ANSWER` when its API does not answer). NotFound when the root has no
 * database.
 */
export async function readStatus(config: Config): Promise<Status> {
  return withDaemonStore(config, async (store) => {
    const daemons = await Promise.all(
      store.listDaemons().map(async (d) => {
        let state = pidAlive(d.pid) ? "NO ANSWER" : "DEAD";
        if (state !== "DEAD")
          state = await new NydusdClient(d.apiSocket).info(1000).then(
            (i) => i.state,
            () => state,
          );
        return { id: d.id, pid: d.pid, mode: d.mode, mountpoint: d.mountpoint, apiSocket: d.apiSocket, state };
      }),
    );
    const instances = store.listInstances().map((i) => ({
      snapshotId: i.snapshotId,
      imageId: i.imageId,
      daemonId: i.daemonId,
      mountpoint: i.mountpoint,
      status: i.status,
      problem: i.problem,
      mounted: isMountpoint(i.mountpoint),
    }));
    const findings = store.findings().map((f) => ({ subject: f.subject, problem: f.problem, fix: f.fix, checkedAt: f.checkedAt }));
    return { root: config.root, daemons, instances, findings };
  });
}

/**
 * Runs `fn` on the daemon and instance records of `<root>/rafsnap.db`, opened read-only
 * (beside a running server) and closed when `fn` is done. NotFound when the root has no
 * database.
 */
async function withDaemonStore<T>(config: Config, fn: (store: DaemonStore) => T | Promise<T>): Promise<T> {
  const path = join(config.root, DB_FILE);
  if (!existsSync(path)) throw notFound(`no rafsnap database at ${path}: has rafsnap served this root (--root)?`);
  const db = openDbReadonly(path);
  try {
    return await fn(new DaemonStore(db, systemClock()));
  } finally {
    db.$client.close();
  }
}

/** Where an image's daemon answers, for asking it about that image's instance. */
export interface ImageDaemon {
  /** The daemon's API socket. */
  apiSocket: string;
  /** The instance id in the daemon's API: `/<snapshot id>` on a shared daemon, none on a dedicated one. */
  apiId: string | undefined;
}

/**
 * The daemon serving image `imageRef` under the root (read-only, beside a running server): its
 * API socket and the instance's id there. The newest instance when the image is mounted more
 * than once. NotFound when the root has no database or no instance of that image (naming the
 * images that are mounted).
 */
export function imageDaemon(config: Config, imageRef: string): Promise<ImageDaemon> {
  return withDaemonStore(config, (store) => {
    const all = store.listInstances();
    const mine = all.filter((i) => i.imageId === imageRef).sort((a, b) => b.seq - a.seq)[0];
    if (!mine) {
      const known = [...new Set(all.map((i) => i.imageId))].slice(0, 10);
      throw notFound(`no RAFS instance of image ${JSON.stringify(imageRef)} under ${config.root}${known.length ? ` (mounted: ${known.join(", ")})` : ""}`);
    }
    const d = store.listDaemons().find((x) => x.id === mine.daemonId);
    if (!d) throw notFound(`the daemon ${mine.daemonId} of image ${JSON.stringify(imageRef)} has no record under ${config.root}`);
    return { apiSocket: d.apiSocket, apiId: d.mode === "shared" ? `/${mine.snapshotId}` : undefined };
  });
}

/** The status as text: a section per table, a line per row. */
export function formatStatus(s: Status): string {
  const out: string[] = [`root: ${s.root}`, "", `DAEMONS (${s.daemons.length})`];
  for (const d of s.daemons) out.push(`  ${d.id}  pid ${d.pid}  ${d.mode}  ${d.state}  ${d.mountpoint}`);
  out.push("", `RAFS INSTANCES (${s.instances.length})`);
  for (const i of s.instances) {
    out.push(`  snapshot ${i.snapshotId}  ${i.imageId}  daemon ${i.daemonId}  ${i.status}${i.mounted ? "" : " (not mounted)"}  ${i.mountpoint}`);
    if (i.problem) out.push(`    problem: ${i.problem}`);
  }
  const when = s.findings[0] ? new Date(s.findings[0].checkedAt / 1000).toISOString() : undefined;
  out.push("", `READINESS CHECK: ${s.findings.length === 0 ? "no problems found at the last start" : `${s.findings.length} problem(s) at ${when}`}`);
  for (const f of s.findings) out.push(`  ${f.subject}: ${f.problem}`, `    fix: ${f.fix}`);
  return `${out.join("\n")}\n`;
}
