/**
 * `rafsnap setup containerd`: wires containerd's config.toml to rafsnap, touching the file
 * only when something has to change, with a backup, an atomic replace and a diff.
 */
import { constants } from "node:fs";
import { copyFile, chmod, chown, mkdir, open, readFile, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { failedPrecondition, invalidArgument } from "../errdefs/index.ts";
import { type ContainerdConfigVersion, planContainerdConfig } from "./containerd-config.ts";
import { unifiedDiff } from "./line-diff.ts";

/** containerd's default config file. */
export const DEFAULT_CONTAINERD_CONFIG = "/etc/containerd/config.toml";

/** Options of {@link setupContainerd}. */
export interface SetupContainerdOptions {
  /** containerd's config.toml; created (with its directory) when missing. */
  configPath: string;
  /** rafsnap's socket, written as the proxy plugin's address. */
  address: string;
  /** Also set the CRI snapshotter settings. */
  cri: boolean;
  /** Compute and return the diff, write nothing. */
  dryRun: boolean;
  /** Major version of the installed containerd (decides 2 or 3 for a new file); 1.x when unknown. */
  containerdMajor?: number;
  /** Clock for the backup name. */
  now?: () => Date;
}

/** Result of {@link setupContainerd}. */
export interface SetupContainerdResult {
  /** The file edited (symlinks resolved). */
  configPath: string;
  /** The file did not exist before. */
  created: boolean;
  /** Something had to change (false: already wired; nothing written, no backup). */
  changed: boolean;
  /** The file was written (changed and not a dry run). */
  written: boolean;
  /** Path of the copy of the previous file, when one was written. */
  backup?: string;
  /** Unified diff from the previous to the new content ("" when unchanged). */
  diff: string;
  version: ContainerdConfigVersion;
  /** Headers of the tables that changed. */
  tables: string[];
  notes: string[];
}

/**
 * Adds `[proxy_plugins.nydus]` (and with `cri` the CRI snapshotter settings) to containerd's
 * config as a text edit — see `docs/setup.md`. When every key already has its value it
 * returns `changed: false` and touches nothing. Otherwise (unless `dryRun`) it copies the old
 * file to `<config>.rafsnap-bak.<UTC timestamp>` with the same mode and owner, writes the new
 * content to a temp file in the same directory with the original mode and owner, fsyncs it
 * and renames it over the config. A symlinked config is edited at its target.
 *
 * @throws RafsnapError InvalidArgument when the file is not valid TOML, has an unknown
 *   `version`, or is not a regular file; FailedPrecondition when a table is written in a form
 *   a line edit cannot change safely, or when the file changed while it was being edited;
 *   Internal when the edit does not verify. Nothing is written in any of these cases.
 */
export async function setupContainerd(opts: SetupContainerdOptions): Promise<SetupContainerdResult> {
  const path = await realpath(opts.configPath).catch(() => opts.configPath);
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw invalidArgument(`cannot read ${path}: ${err.message}`, err);
  });
  if (st && !st.isFile()) throw invalidArgument(`${path} is not a regular file`);
  const before = st ? await readFile(path, "utf8") : "";
  const plan = planContainerdConfig(before, path, {
    address: opts.address,
    cri: opts.cri,
    newFileVersion: (opts.containerdMajor ?? 1) >= 2 ? 3 : 2,
  });
  const changed = plan.text !== before || !st;
  const result: SetupContainerdResult = {
    configPath: path,
    created: !st,
    changed,
    written: false,
    diff: unifiedDiff(before, plan.text, st ? path : "/dev/null", path),
    version: plan.version,
    tables: plan.tables,
    notes: plan.notes,
  };
  if (!changed || opts.dryRun) return result;

  if (st) {
    // The file must still be what we planned from: another tool may have edited it meanwhile.
    if ((await readFile(path, "utf8")) !== before) throw failedPrecondition(`${path} changed while rafsnap was editing it; run again`);
    result.backup = await backup(path, st.mode & 0o7777, st.uid, st.gid, (opts.now ?? (() => new Date()))());
  } else {
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  }
  await writeAtomic(path, plan.text, st ? st.mode & 0o7777 : 0o644, st?.uid, st?.gid);
  result.written = true;
  return result;
}

/** Copies `path` to `path.rafsnap-bak.<YYYYMMDDTHHMMSSZ>[.N]` (never overwriting) with its mode and owner. */
async function backup(path: string, mode: number, uid: number, gid: number, now: Date): Promise<string> {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  for (let n = 0; ; n++) {
    const target = `${path}.rafsnap-bak.${stamp}${n ? `.${n}` : ""}`;
    try {
      await copyFile(path, target, constants.COPYFILE_EXCL);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST" && n < 100) continue;
      throw err;
    }
    await chmod(target, mode);
    if (process.getuid?.() === 0) await chown(target, uid, gid);
    return target;
  }
}

/** Writes `text` to a temp file next to `path` (mode, owner), fsyncs, renames it over `path`. */
async function writeAtomic(path: string, text: string, mode: number, uid?: number, gid?: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.rafsnap-tmp-${process.pid}`);
  await rm(tmp, { force: true });
  try {
    const fh = await open(tmp, "wx", mode);
    try {
      await fh.writeFile(text, "utf8");
      await fh.chmod(mode); // the umask applied to open()
      if (uid !== undefined && gid !== undefined && process.getuid?.() === 0) await fh.chown(uid, gid);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
