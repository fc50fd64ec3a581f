/**
 * The individual checks of `rafsnap doctor`. Each returns one or more {@link DoctorCheck}s and
 * never throws: a failure to look is itself reported as a check result.
 */
import { constants, type Stats } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { defaultConfig, MAX_SOCKET_PATH_BYTES } from "../config/index.ts";
import { checkDType } from "../snapshot/dtype.ts";
import { configVersion, CRI_TABLE, hostPlatform, PROXY_PLUGIN_NAME, proxyPluginFor, UNPACK_CONFIG_TABLE } from "./containerd-config.ts";
import { kernelFilesystems, kernelVersion, socketAccepts } from "./probe.ts";
import { valueAt } from "./toml-edit.ts";

/** ok: fine; warn: works, but something is missing or unusual; fail: a required thing is missing. */
export type CheckStatus = "ok" | "warn" | "fail";

/** One line of the report. */
export interface DoctorCheck {
  /** Stable id, e.g. `d_type`, `containerd-wiring`. */
  id: string;
  status: CheckStatus;
  /** Whether `fail` is possible for this check (required by today's snapshotter). */
  required: boolean;
  /** What was found. */
  message: string;
  /** How to fix it (when not ok). */
  fix?: string;
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));
const ok = (id: string, required: boolean, message: string): DoctorCheck => ({ id, status: "ok", required, message });

/** First kernel release with file-backed EROFS mounts (mount a regular file, no loop device). */
export const EROFS_FILE_BACKED_KERNEL: readonly [number, number] = [6, 12];

/** overlayfs (required), EROFS and file-backed EROFS, FUSE (needed for nydus images only). */
export async function kernelChecks(procFilesystems?: string, release?: string): Promise<DoctorCheck[]> {
  const fs = await kernelFilesystems(procFilesystems);
  const out: DoctorCheck[] = [];
  out.push(
    fs.has("overlay")
      ? ok("overlayfs", true, "kernel has overlayfs")
      : {
          id: "overlayfs",
          status: "fail",
          required: true,
          message: "kernel has no overlayfs (not in /proc/filesystems)",
          fix: "run: modprobe overlay (kernel option CONFIG_OVERLAY_FS)",
        },
  );
  if (fs.has("erofs")) {
    out.push(ok("erofs", false, "kernel has EROFS"));
    const v = kernelVersion(release);
    const [maj, min] = EROFS_FILE_BACKED_KERNEL;
    if (v && (v[0] > maj || (v[0] === maj && v[1] >= min)))
      out.push(ok("erofs-file-backed", false, `kernel ${v.join(".")} mounts EROFS images from regular files`));
    else {
      out.push({
        id: "erofs-file-backed",
        status: "warn",
        required: false,
        message: `kernel ${v ? v.join(".") : "(unknown version)"} is older than ${maj}.${min}: no file-backed EROFS mounts; nydus images will use loop devices over the blob files`,
        fix: `make sure loop devices are available (modprobe loop), or run a kernel >= ${maj}.${min}`,
      });
    }
  } else {
    out.push({
      id: "erofs",
      status: "warn",
      required: false,
      message: "kernel has no EROFS (not in /proc/filesystems): needed for nydus images, not for OCI images",
      fix: "run: modprobe erofs (kernel option CONFIG_EROFS_FS)",
    });
  }
  const devFuse = await stat("/dev/fuse").catch(() => undefined);
  if (fs.has("fuse") && devFuse?.isCharacterDevice()) out.push(ok("fuse", false, "kernel has FUSE and /dev/fuse exists"));
  else {
    const what = !fs.has("fuse") ? "kernel has no FUSE (not in /proc/filesystems)" : "/dev/fuse is missing";
    out.push({
      id: "fuse",
      status: "warn",
      required: false,
      message: `${what}: needed for nydus images, not for OCI images`,
      fix: "run: modprobe fuse (and in a container, pass --device /dev/fuse)",
    });
  }
  return out;
}

/** The state directory: exists as a directory with mode 0700, or can be created; d_type. */
export async function rootChecks(root: string): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  const st = await stat(root).catch((e: NodeJS.ErrnoException) => e);
  let probeDir = root;
  if (st instanceof Error) {
    if (st.code !== "ENOENT")
      return [
        {
          id: "root",
          status: "fail",
          required: true,
          message: `cannot stat root ${root}: ${st.message}`,
          fix: "fix the path or its permissions, or set root / --root",
        },
      ];
    const parent = await nearestExisting(root);
    if (!(await writable(parent))) {
      return [
        {
          id: "root",
          status: "fail",
          required: true,
          message: `root ${root} does not exist and ${parent} is not writable`,
          fix: `run: mkdir -p -m 0700 ${root} (as root)`,
        },
      ];
    }
    out.push(ok("root", true, `root ${root} does not exist yet; rafsnap will create it (0700) under ${parent}`));
    probeDir = parent;
  } else if (!st.isDirectory()) {
    return [{ id: "root", status: "fail", required: true, message: `root ${root} is not a directory`, fix: "remove it or set another root / --root" }];
  } else if ((st.mode & 0o777) !== 0o700) {
    out.push({
      id: "root",
      status: "warn",
      required: true,
      message: `root ${root} has mode ${modeText(st)}, expected 0700 (snapshots hold image content)`,
      fix: `run: chmod 0700 ${root}`,
    });
  } else {
    out.push(ok("root", true, `root ${root} exists with mode 0700`));
  }
  try {
    if (await checkDType(probeDir)) out.push(ok("d_type", true, `the filesystem of ${probeDir} supports d_type (overlayfs needs it)`));
    else {
      out.push({
        id: "d_type",
        status: "fail",
        required: true,
        message: `the filesystem of ${probeDir} does not support d_type; overlayfs (and rafsnap) cannot use it`,
        fix: "put root on a filesystem with d_type (ext4, or xfs made with ftype=1) or set another root / --root",
      });
    }
  } catch (e) {
    out.push({
      id: "d_type",
      status: "fail",
      required: true,
      message: `cannot check d_type on ${probeDir}: ${errText(e)}`,
      fix: "run doctor as root, or check the path's permissions",
    });
  }
  return out;
}

/** The socket path: fits sun_path, its directory exists or can be created; is rafsnap serving? */
export async function socketChecks(address: string): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  const dir = dirname(address);
  if (Buffer.byteLength(address) > MAX_SOCKET_PATH_BYTES) {
    out.push({
      id: "socket-path",
      status: "fail",
      required: true,
      message: `socket path ${address} is longer than ${MAX_SOCKET_PATH_BYTES} bytes`,
      fix: "set a shorter address / --address",
    });
  } else {
    const st = await stat(dir).catch(() => undefined);
    if (st?.isDirectory()) out.push(ok("socket-path", true, `socket directory ${dir} exists`));
    else if (st) out.push({ id: "socket-path", status: "fail", required: true, message: `${dir} is not a directory`, fix: "set another address / --address" });
    else {
      const parent = await nearestExisting(dir);
      if (await writable(parent)) out.push(ok("socket-path", true, `socket directory ${dir} does not exist yet; rafsnap will create it`));
      else
        out.push({
          id: "socket-path",
          status: "fail",
          required: true,
          message: `socket directory ${dir} does not exist and ${parent} is not writable`,
          fix: `run: mkdir -p ${dir} (as root)`,
        });
    }
  }
  out.push(
    (await socketAccepts(address))
      ? ok("serving", false, `rafsnap (or another process) is serving on ${address}`)
      : {
          id: "serving",
          status: "warn",
          required: false,
          message: `nothing is serving on ${address}`,
          fix: "run: systemctl enable --now rafsnap (or rafsnap serve)",
        },
  );
  return out;
}

/** containerd reachable, its config wired to `address` (proxy plugin), and CRI (informative). */
export async function containerdChecks(o: { configPath: string; address?: string; snapshotterAddress: string }): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  const setupCmd = o.configPath === "/etc/containerd/config.toml" ? "rafsnap setup containerd" : `rafsnap setup containerd --config ${o.configPath}`;
  let doc: Record<string, unknown> | undefined;
  let loadProblem: DoctorCheck | undefined;
  try {
    doc = Bun.TOML.parse(await readFile(o.configPath, "utf8")) as Record<string, unknown>;
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    loadProblem = {
      id: "containerd-wiring",
      status: "fail",
      required: true,
      message: missing
        ? `containerd config ${o.configPath} does not exist, so containerd does not know rafsnap`
        : `cannot read containerd config ${o.configPath}: ${errText(e)}`,
      fix: missing ? `run: ${setupCmd} (then restart containerd)` : `fix the file, then run: ${setupCmd}`,
    };
  }
  const grpcAddress = doc ? valueAt(doc, ["grpc", "address"]) : undefined;
  const address = o.address ?? (typeof grpcAddress === "string" && grpcAddress ? grpcAddress : "/run/containerd/containerd.sock");
  out.push(
    (await socketAccepts(address))
      ? ok("containerd", false, `containerd is reachable on ${address}`)
      : {
          id: "containerd",
          status: "warn",
          required: false,
          message: `containerd is not reachable on ${address}`,
          fix: "start containerd (systemctl start containerd), or pass --containerd-address",
        },
  );
  if (!doc) {
    out.push(loadProblem as DoctorCheck);
    return out;
  }
  const files = [o.configPath, ...(await importedFiles(doc, o.configPath))];
  let name: string | undefined;
  let version: ReturnType<typeof configVersion> | undefined;
  const docs: Record<string, unknown>[] = [doc];
  for (const f of files.slice(1)) {
    const d = await readFile(f, "utf8")
      .then((t) => Bun.TOML.parse(t) as Record<string, unknown>)
      .catch(() => undefined);
    if (d) docs.push(d);
  }
  for (const d of docs) name ??= proxyPluginFor(d, o.snapshotterAddress);
  try {
    version = configVersion(doc);
  } catch {
    version = undefined;
  }
  if (name !== undefined) {
    out.push(
      ok(
        "containerd-wiring",
        true,
        `containerd config ${o.configPath} has [proxy_plugins.${name}] on ${o.snapshotterAddress}${name === PROXY_PLUGIN_NAME ? "" : ` (use --snapshotter ${name})`}; a running containerd picks it up only after a restart`,
      ),
    );
  } else {
    const other = valueAt(doc, ["proxy_plugins", PROXY_PLUGIN_NAME, "address"]);
    out.push({
      id: "containerd-wiring",
      status: "fail",
      required: true,
      message:
        typeof other === "string"
          ? `containerd config ${o.configPath} has [proxy_plugins.${PROXY_PLUGIN_NAME}] on ${other}, not on rafsnap's ${o.snapshotterAddress}`
          : `containerd config ${o.configPath} has no snapshot proxy plugin on ${o.snapshotterAddress}`,
      fix: `run: ${setupCmd}${o.snapshotterAddress === defaultConfig().address ? "" : ` --address ${o.snapshotterAddress}`} (then restart containerd)`,
    });
  }
  const sn = name ?? PROXY_PLUGIN_NAME;
  // Version 3 (containerd 2.x) pulls through the transfer service: see containerd-config.ts.
  const exported = docs.some((d) => valueAt(d, ["proxy_plugins", sn, "exports", "enable_remote_snapshot_annotations"]) === "true");
  const platform = hostPlatform();
  const unpacks = docs.some((d) => {
    const list = valueAt(d, UNPACK_CONFIG_TABLE);
    return Array.isArray(list) && list.some((e) => valueAt(e, ["snapshotter"]) === sn && valueAt(e, ["platform"]) === platform);
  });
  if (version === 3 && name !== undefined) {
    if (exported && unpacks)
      out.push(ok("containerd-transfer", false, `containerd 2.x's transfer service unpacks ${platform} images into ${sn} with remote snapshot labels`));
    else {
      const missing = [
        ...(exported ? [] : [`[proxy_plugins.${sn}.exports] enable_remote_snapshot_annotations = "true"`]),
        ...(unpacks ? [] : [`an unpack_config entry (platform = "${platform}", snapshotter = "${sn}")`]),
      ];
      out.push({
        id: "containerd-transfer",
        status: "warn",
        required: false,
        message: `containerd config ${o.configPath} (version 3) lacks ${missing.join(" and ")}: pulls through the transfer service (ctr, CRI) will not unpack into ${sn} or not pass it the labels nydus images need`,
        fix: `run: ${setupCmd} (then restart containerd)`,
      });
    }
  }
  if (version !== undefined) {
    const cri = docs.map((d) => valueAt(d, CRI_TABLE[version])).find((t) => t !== undefined);
    const snapshotter = valueAt(cri, ["snapshotter"]);
    const annotations = valueAt(cri, ["disable_snapshot_annotations"]);
    // v3: the labels come from the proxy plugin's exports unless CRI's own setting (which makes
    // containerd 2.1 use its client-side pull) turns them on.
    const labelled = annotations === false || (version === 3 && exported && unpacks);
    if (snapshotter === sn && labelled) out.push(ok("containerd-cri", false, `CRI pulls through ${snapshotter} with snapshot annotations`));
    else {
      out.push({
        id: "containerd-cri",
        status: "warn",
        required: false,
        message: `CRI (Kubernetes) does not use rafsnap: snapshotter = ${JSON.stringify(snapshotter ?? "overlayfs")}, disable_snapshot_annotations = ${String(annotations ?? "default")}; fine for ctr/nerdctl use`,
        fix: `for Kubernetes run: ${setupCmd} --cri`,
      });
    }
  }
  return out;
}

/** The files named by containerd's top-level `imports` (globs allowed; relative to the config's directory). */
async function importedFiles(doc: Record<string, unknown>, configPath: string): Promise<string[]> {
  const imports = Array.isArray(doc.imports) ? doc.imports.filter((i): i is string => typeof i === "string") : [];
  const out: string[] = [];
  for (const imp of imports) {
    const abs = isAbsolute(imp) ? imp : resolve(dirname(configPath), imp);
    if (!/[*?[]/.test(abs)) {
      out.push(abs);
      continue;
    }
    for (const f of new Bun.Glob(abs.slice(1)).scanSync({ cwd: "/", onlyFiles: true })) out.push(join("/", f));
  }
  return out.filter((f) => resolve(f) !== resolve(configPath));
}

/** The closest existing ancestor of `path` (at worst `/`). */
async function nearestExisting(path: string): Promise<string> {
  let cur = path;
  while (
    !(await stat(cur)
      .then(() => true)
      .catch(() => false)) &&
    dirname(cur) !== cur
  )
    cur = dirname(cur);
  return cur;
}

async function writable(dir: string): Promise<boolean> {
  return access(dir, constants.W_OK | constants.X_OK)
    .then(() => true)
    .catch(() => false);
}

function modeText(st: Stats): string {
  return `0${(st.mode & 0o777).toString(8).padStart(3, "0")}`;
}
