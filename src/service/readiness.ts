import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log/index.ts";
import { bootstrapBlobIds, type NydusFs } from "../nydusfs/index.ts";
import { isMountpoint } from "../mount/index.ts";
import { Label, type Snapshotter } from "../snapshot/index.ts";
import type { DaemonStore, Finding, MetaStore } from "../store/index.ts";

const REPULL = "remove the image (crictl rmi / ctr -n k8s.io images rm) and pull it again";

/**
 * The image readiness check run at start, after recovery (metadata alone does not prove an
 * image is usable): every committed snapshot must have its directory; every nydus meta
 * snapshot a valid bootstrap; every RAFS instance a live daemon and a mounted mountpoint
 * (read from /proc/self/mountinfo). An instance over a bad bootstrap is unmounted (a new
 * container then fails with the bootstrap's error); one whose daemon or mount is gone is
 * marked broken (Prepare over it fails naming the problem). Findings replace the previous
 * ones in the store (`rafsnap status` prints them) and are logged with the fix.
 */
export async function checkReadiness(
  sn: Snapshotter,
  meta: MetaStore,
  daemons: DaemonStore,
  fs: NydusFs | undefined,
  failedDaemons: Map<string, string>,
  logger: Logger,
): Promise<Finding[]> {
  const log = logger.withTag("readiness");
  const findings: Finding[] = [];
  const committed = sn.list(["kind==committed"]);
  for (const info of committed) {
    const { id } = meta.read((tx) => tx.getInfo(info.name));
    const dir = join(sn.snapshotsDir, id);
    if (!existsSync(join(dir, "fs"))) {
      findings.push({ subject: `snapshot ${info.name} (id ${id})`, problem: `directory ${dir}/fs is missing`, fix: REPULL });
      continue;
    }
    if (!fs || !(Label.NydusMetaLayer in info.labels)) continue;
    const ref = info.labels[Label.CRIImageRef] ?? info.name;
    try {
      bootstrapBlobIds(dir, ref);
    } catch (e) {
      findings.push({ subject: `image ${ref} (snapshot id ${id})`, problem: (e as Error).message, fix: REPULL });
      if (daemons.getInstance(id)) await fs.umount(id).catch(() => {});
    }
  }
  for (const inst of daemons.listInstances()) {
    const subject = `image ${inst.imageId} (instance ${inst.snapshotId}, daemon ${inst.daemonId})`;
    let problem: string | undefined;
    const why = failedDaemons.get(inst.daemonId);
    if (why !== undefined) problem = `its nydusd could not be started: ${why}`;
    else if (!isMountpoint(inst.mountpoint)) problem = `its mountpoint ${inst.mountpoint} is not mounted`;
    if (problem) {
      daemons.setInstanceStatus(inst.snapshotId, `${problem}; fix: restart rafsnap after fixing the cause, or ${REPULL}`);
      findings.push({ subject, problem, fix: `restart rafsnap after fixing the cause, or ${REPULL}` });
    } else if (inst.status === "broken") {
      daemons.setInstanceStatus(inst.snapshotId, null);
    }
  }
  try {
    daemons.replaceFindings(findings);
  } catch (e) {
    // Recorded only for `rafsnap status`: a full disk must not stop rafsnap from starting.
    log.warn(`the readiness findings could not be recorded (rafsnap status will show older ones): ${(e as Error).message}`);
  }
  for (const f of findings) log.error(`${f.subject}: ${f.problem}; fix: ${f.fix}`);
  log.info(`readiness check: ${committed.length} committed snapshots, ${daemons.listInstances().length} RAFS instances, ${findings.length} problem(s)`);
  return findings;
}
