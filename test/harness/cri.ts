// Driving containerd's CRI plugin (Kubernetes CRI `runtime.v1`) the way kubelet does, for
// end-to-end tests: pull through CRI (the only client that gives remote snapshotters their
// labels), host-network pods, containers whose CRI log file we read.
//
// Facts found with Debian's containerd 1.6.20 (see also docs/design.md §6):
// - CRI answers on containerd's main gRPC socket and always works in namespace `k8s.io`.
// - CRI pulls from `127.0.0.1:PORT` over plain HTTP with no registry config at all (seen in
//   its debug log: straight to `http://`, no https attempt). PullImage's `auth` (username/password) works with the registry's htpasswd
//   (basic) auth. With bearer-token auth and credentials, containerd first POSTs an OAuth2
//   password grant to the realm and wants `access_token` in the answer (a GET `token` only
//   answer fails: "authorization server did not include a token in the response"), and only
//   falls back to the GET token request when the POST fails with an HTTP error (e.g. 404);
//   test/harness/token-server.ts answers any method with `token`, so it cannot serve CRI yet.
// - The sandbox ("pause") image is never pulled when present: an image imported with
//   `ctr -n k8s.io images import` shows up in CRI's image store (through containerd's image
//   events) after a moment. It is unpacked into CRI's snapshotter by the import here; CRI
//   would otherwise unpack it itself when it creates the sandbox container.
// - Pods with host networking must leave `hostname` empty; containers in them follow the
//   pod's network namespace (NODE) and get a PID namespace of their own (CONTAINER), as
//   kubelet asks for.
// - `log_directory` must be absolute; a container's `log_path` is relative to it. CRI writes
//   one line per chunk: `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`; `P` marks a
//   partial line continued by the next entry of the same stream.
// - StopPodSandbox stops the pod's containers (and SIGKILLs the sandbox); RemovePodSandbox then
//   removes them with the pod. `removePod` calls both, as kubelet does.
// - PullImage answers with the image id (`sha256:` + config digest), not the reference.
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ContainerStatus,
  ContainerState,
  type Image,
  NamespaceMode,
  type PodSandboxConfigSchema,
  type VersionResponse,
} from "../../gen/k8s/runtime/v1/api_pb.ts";
import { type CriClients, criClients } from "../support/cri-client.ts";
import { type Containerd, CRI_NAMESPACE } from "./containerd.ts";
import { run } from "./process.ts";

/** What containerd 1.6 answers when a container's exit races its kill (kubelet retries these). */
const KILL_RACE = /ttrpc: closed|failed to kill container .*context canceled/;

/** The sandbox image the harness config of containerd.ts uses unless told otherwise. */
export const DEFAULT_SANDBOX_IMAGE = "rafsnap.test/pause:latest";

/** Init shape of a CRI `PodSandboxConfig` (what CreateContainer needs back). */
export type PodConfig = MessageInitShape<typeof PodSandboxConfigSchema>;

/** A running pod sandbox started by {@link CriHarness.runPod}. */
export interface CriPod {
  id: string;
  name: string;
  /** Absolute directory that holds the CRI log files of the pod's containers. */
  logDir: string;
  /** The config it was started with (sent again with every CreateContainer). */
  config: PodConfig;
}

/** What to run in {@link CriHarness.startContainer}. */
export interface ContainerSpec {
  /** Image reference as pulled (`127.0.0.1:PORT/name:tag`) or image id. */
  image: string;
  /** Replaces the image's entrypoint. */
  command?: string[];
  /** Replaces the image's cmd. */
  args?: string[];
  /** Container name within the pod; default `c<N>`. */
  name?: string;
  envs?: Record<string, string>;
  workingDir?: string;
  labels?: Record<string, string>;
  /** Bind mounts from the host. */
  mounts?: { hostPath: string; containerPath: string; readonly?: boolean }[];
}

/** A started container. */
export interface CriContainer {
  id: string;
  name: string;
  podId: string;
  /** Absolute path of its CRI log file. */
  logPath: string;
}

/** One entry of a CRI container log file (partial `P` entries already joined). */
export interface CriLogLine {
  time: string;
  stream: "stdout" | "stderr";
  text: string;
}

/** Registry credentials for {@link CriHarness.pullImage}. */
export interface CriAuth {
  username: string;
  password: string;
}

/** Options of {@link criHarness}. */
export interface CriHarnessOptions {
  /** Directory for pod log directories and the sandbox image tarball (created). */
  dir: string;
  /** CRI's snapshotter (as in `cri.snapshotter` of containerd.ts); default `overlayfs`. */
  snapshotter?: string;
  /** Timeout of each CRI call; default 120 s (pulls through a lazy snapshotter may be slow). */
  callTimeoutMs?: number;
}

/** High-level CRI operations on one containerd; see {@link criHarness}. */
export interface CriHarness {
  /** The raw typed clients, for calls the helpers do not cover. */
  clients: CriClients;
  /** CRI Version (runtime name, version, CRI API version). */
  version(): Promise<VersionResponse>;
  /**
   * Imports a local sandbox image (busybox `sleep`, see {@link buildSandboxImage}) into
   * `k8s.io` as `ref` (default {@link DEFAULT_SANDBOX_IMAGE}), unpacked into the harness's
   * snapshotter, and waits until CRI lists it. Call once before {@link CriHarness.runPod}.
   */
  importSandboxImage(ref?: string): Promise<void>;
  /** PullImage through CRI; returns the image id (`sha256:…`). Any ref in the 127.0.0.1 registry. */
  pullImage(ref: string, auth?: CriAuth): Promise<string>;
  /** ImageStatus; undefined when CRI does not know the image. */
  imageStatus(ref: string): Promise<Image | undefined>;
  /** ListImages (all images of namespace `k8s.io`). */
  listImages(): Promise<Image[]>;
  /** RemoveImage (every tag of it); content and snapshots go at containerd's next GC. */
  removeImage(ref: string): Promise<void>;
  /** RunPodSandbox with host networking, no hostname, logs under `DIR/pods/<name>-<uid>`. */
  runPod(name: string, opts?: { labels?: Record<string, string> }): Promise<CriPod>;
  /** CreateContainer + StartContainer in `pod`; the image must have been pulled. */
  startContainer(pod: CriPod, spec: ContainerSpec): Promise<CriContainer>;
  /** CreateContainer only (the snapshot is prepared; nothing runs yet). */
  createContainer(pod: CriPod, spec: ContainerSpec): Promise<CriContainer>;
  /** StartContainer of a created container. */
  startCreated(c: CriContainer): Promise<void>;
  /** ContainerStatus of a container. */
  containerStatus(id: string): Promise<ContainerStatus>;
  /** Polls ContainerStatus until the container has exited; returns that status. */
  waitForExit(id: string, timeoutMs?: number): Promise<ContainerStatus>;
  /**
   * Reads the CRI log file of a container (by id, or an absolute log path) until
   * `predicate(lines)` holds; returns the lines. Throws after `timeoutMs` (default 30 s) with
   * what the log held, the container's state and containerd's log tail.
   */
  waitForLog(target: string, predicate: (lines: CriLogLine[]) => boolean, timeoutMs?: number): Promise<CriLogLine[]>;
  /** StopContainer (SIGTERM, SIGKILL after `timeoutSec`, default 0) + RemoveContainer. */
  stopAndRemoveContainer(id: string, timeoutSec?: number): Promise<void>;
  /** StopPodSandbox + RemovePodSandbox (its containers go with it). Missing pods are fine. */
  removePod(pod: CriPod | string): Promise<void>;
  /** Stops and removes every pod (and container) CRI knows. For `Cleanup.add`; idempotent. */
  stop(): Promise<void>;
}

/** Parses CRI log text (`TIME STREAM TAG TEXT` lines), joining partial (`P`) entries per stream. */
export function parseCriLog(text: string): CriLogLine[] {
  const out: CriLogLine[] = [];
  const pending: Record<string, { time: string; text: string } | undefined> = {};
  for (const raw of text.split("\n")) {
    const m = /^(\S+) (stdout|stderr) (F|P) ?(.*)$/.exec(raw);
    if (!m) continue;
    const [, time, stream, tag, body] = m as unknown as [string, string, "stdout" | "stderr", string, string];
    const prev = pending[stream];
    const joined = (prev?.text ?? "") + body;
    if (tag === "P") {
      pending[stream] = { time: prev?.time ?? time, text: joined };
      continue;
    }
    pending[stream] = undefined;
    out.push({ time: prev?.time ?? time, stream, text: joined });
  }
  return out;
}

/** GOARCH of this machine, for image configs. */
function goArch(): string {
  return process.arch === "x64" ? "amd64" : process.arch;
}

const sha256 = (b: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

/**
 * Builds a one-layer sandbox ("pause") image from busybox-static as an OCI archive (tar of an
 * OCI layout, uncompressed layer, reproducible) whose entrypoint sleeps forever, named `tag` in
 * `index.json` (`org.opencontainers.image.ref.name`). Returns the archive's path
 * (`dir/pause.tar`); `ctr images import --base-name REPO` makes it `REPO:tag`.
 * @param busybox the static busybox binary; default `$BUSYBOX` or `/bin/busybox`.
 */
export async function buildSandboxImage(dir: string, tag = "latest", busybox = process.env.BUSYBOX ?? "/bin/busybox"): Promise<string> {
  const tree = join(dir, "pause-rootfs");
  const layout = join(dir, "pause-layout");
  const blobs = join(layout, "blobs/sha256");
  for (const d of [join(tree, "bin"), join(tree, "etc"), join(tree, "dev"), join(tree, "proc"), join(tree, "sys"), blobs]) {
    mkdirSync(d, { recursive: true });
  }
  writeFileSync(join(tree, "bin/busybox"), readFileSync(busybox), { mode: 0o755 });
  for (const a of ["sh", "sleep"]) if (!existsSync(join(tree, "bin", a))) symlinkSync("busybox", join(tree, "bin", a));
  const layerTar = join(dir, "pause-layer.tar");
  const t = await run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", tree, "-cf", layerTar, "."]);
  if (t.code !== 0) throw new Error(`tar: ${t.stderr}`);
  const blob = (bytes: Uint8Array | string) => {
    const d = sha256(bytes);
    writeFileSync(join(blobs, d), bytes);
    return { digest: `sha256:${d}`, size: typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length };
  };
  const layer = blob(new Uint8Array(readFileSync(layerTar)));
  const config = blob(
    JSON.stringify({
      created: "1970-01-01T00:00:00Z",
      architecture: goArch(),
      os: "linux",
      // PID 1 of the pod; StopPodSandbox SIGKILLs it. sleep(3) takes an unsigned int.
      config: { Env: ["PATH=/bin"], Entrypoint: ["/bin/sleep", "2147483647"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: [layer.digest] },
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
    }),
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": tag },
          platform: { architecture: goArch(), os: "linux" },
        },
      ],
    }),
  );
  const archive = join(dir, "pause.tar");
  const a = await run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", layout, "-cf", archive, "."]);
  if (a.code !== 0) throw new Error(`tar: ${a.stderr}`);
  return archive;
}

/** Whether `err` is a gRPC NotFound (CRI's answer for ids it does not know). */
function isNotFound(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.NotFound;
}

/**
 * High-level CRI helpers for the containerd `ctd` (started with `cri` enabled). Register the
 * result with `cleanup.add("cri", harness)` **after** containerd, so that its `stop()` (remove
 * every pod) runs before containerd's.
 *
 * @example
 * ```ts
 * const ctd = cleanup.add("containerd", await startContainerd({ dir, cri: { snapshotter: "overlayfs" } }));
 * const cri = cleanup.add("cri", criHarness(ctd, { dir: join(dir, "cri") }));
 * await cri.importSandboxImage();
 * await cri.pullImage(`${registry.host}/busybox:single`);
 * const pod = await cri.runPod("p1");
 * const c = await cri.startContainer(pod, { image: `${registry.host}/busybox:single`, command: ["sh", "-c", "echo hi"] });
 * await cri.waitForLog(c.id, (l) => l.some((x) => x.text === "hi"));
 * ```
 */
export function criHarness(ctd: Containerd, opts: CriHarnessOptions): CriHarness {
  const clients = criClients(ctd.address);
  const { runtime, image } = clients;
  const snapshotter = opts.snapshotter ?? "overlayfs";
  const call = { timeoutMs: opts.callTimeoutMs ?? 120_000 };
  mkdirSync(opts.dir, { recursive: true });
  let containers = 0;

  /** Adds containerd's log tail to a failed call's error. */
  const explain = async <T>(what: string, p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw new Error(`CRI ${what}: ${(err as Error).message}\n--- containerd.log (tail) ---\n${ctd.logTail(3000)}`, { cause: err });
    }
  };

  const imageStatus = async (ref: string): Promise<Image | undefined> =>
    (await explain(`ImageStatus ${ref}`, image.imageStatus({ image: { image: ref } }, call))).image;

  const containerStatus = async (id: string): Promise<ContainerStatus> => {
    const s = (await explain(`ContainerStatus ${id}`, runtime.containerStatus({ containerId: id }, call))).status;
    if (!s) throw new Error(`CRI ContainerStatus ${id}: no status`);
    return s;
  };

  const removePod = async (pod: CriPod | string): Promise<void> => {
    const id = typeof pod === "string" ? pod : pod.id;
    try {
      // containerd 1.6 may answer "ttrpc: closed", or "failed to kill container …: context
      // canceled", when a container's shim exits while it is being killed (its exit and the
      // kill race); kubelet retries StopPodSandbox, so do we.
      for (let attempt = 1; ; attempt++) {
        try {
          await runtime.stopPodSandbox({ podSandboxId: id }, call);
          break;
        } catch (err) {
          if (attempt >= 3 || !KILL_RACE.test((err as Error).message)) throw err;
          await Bun.sleep(500);
        }
      }
      await runtime.removePodSandbox({ podSandboxId: id }, call);
    } catch (err) {
      if (!isNotFound(err))
        throw new Error(`CRI remove pod ${id}: ${(err as Error).message}\n--- containerd.log (tail) ---\n${ctd.logTail(3000)}`, { cause: err });
    }
  };

  return {
    clients,
    version: () => explain("Version", runtime.version({ version: "v1" }, call)),

    async importSandboxImage(ref = DEFAULT_SANDBOX_IMAGE) {
      const colon = ref.lastIndexOf(":");
      if (colon <= ref.lastIndexOf("/") || ref.includes("@")) throw new Error(`sandbox image ref must be REPO:TAG, got ${ref}`);
      const archive = await buildSandboxImage(join(opts.dir, "sandbox-image"), ref.slice(colon + 1));
      await ctd.ctrOk(["images", "import", "--base-name", ref.slice(0, colon), "--snapshotter", snapshotter, archive], {
        namespace: CRI_NAMESPACE,
        timeoutMs: 60_000,
      });
      // CRI learns about the image from containerd's image events, asynchronously.
      const deadline = Date.now() + 15_000;
      while (!(await imageStatus(ref))) {
        if (Date.now() > deadline) throw new Error(`CRI does not list the imported sandbox image ${ref}\n${ctd.logTail(3000)}`);
        await Bun.sleep(50);
      }
    },

    async pullImage(ref, auth) {
      const r = await explain(
        `PullImage ${ref}`,
        image.pullImage({ image: { image: ref }, ...(auth ? { auth: { username: auth.username, password: auth.password } } : {}) }, call),
      );
      return r.imageRef;
    },

    imageStatus,
    listImages: async () => (await explain("ListImages", image.listImages({}, call))).images,

    async removeImage(ref) {
      await explain(`RemoveImage ${ref}`, image.removeImage({ image: { image: ref } }, call));
    },

    async runPod(name, o = {}) {
      const uid = randomUUID();
      const logDir = join(opts.dir, "pods", `${name}-${uid}`);
      mkdirSync(logDir, { recursive: true });
      const config: PodConfig = {
        metadata: { name, uid, namespace: "rafsnap-test", attempt: 0 },
        logDirectory: logDir,
        labels: { "rafsnap.test/pod": name, ...o.labels },
        linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.POD, ipc: NamespaceMode.POD } } },
      };
      const r = await explain(`RunPodSandbox ${name}`, runtime.runPodSandbox({ config }, call));
      return { id: r.podSandboxId, name, logDir, config };
    },

    async startContainer(pod, spec) {
      const c = await this.createContainer(pod, spec);
      try {
        await this.startCreated(c);
      } catch (err) {
        await runtime.removeContainer({ containerId: c.id }, call).catch(() => {});
        throw err;
      }
      return c;
    },

    async startCreated(c) {
      await explain(`StartContainer ${c.name}`, runtime.startContainer({ containerId: c.id }, call));
    },

    async createContainer(pod, spec) {
      const name = spec.name ?? `c${++containers}`;
      const logRel = `${name}_0.log`;
      const created = await explain(
        `CreateContainer ${name} (${spec.image})`,
        runtime.createContainer(
          {
            podSandboxId: pod.id,
            sandboxConfig: pod.config,
            config: {
              metadata: { name, attempt: 0 },
              image: { image: spec.image },
              command: spec.command ?? [],
              args: spec.args ?? [],
              workingDir: spec.workingDir ?? "",
              envs: Object.entries(spec.envs ?? {}).map(([key, value]) => ({ key, value })),
              mounts: (spec.mounts ?? []).map((m) => ({ hostPath: m.hostPath, containerPath: m.containerPath, readonly: m.readonly ?? false })),
              labels: spec.labels ?? {},
              logPath: logRel,
              stdin: false,
              tty: false,
              linux: {
                securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } },
              },
            },
          },
          call,
        ),
      );
      const id = created.containerId;
      return { id, name, podId: pod.id, logPath: join(pod.logDir, logRel) };
    },

    containerStatus,

    async waitForExit(id, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = await containerStatus(id);
        if (s.state === ContainerState.CONTAINER_EXITED) return s;
        if (Date.now() > deadline) throw new Error(`container ${id} still ${ContainerState[s.state]} after ${timeoutMs} ms`);
        await Bun.sleep(100);
      }
    },

    async waitForLog(target, predicate, timeoutMs = 30_000) {
      const path = target.startsWith("/") ? target : (await containerStatus(target)).logPath;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const lines = existsSync(path) ? parseCriLog(readFileSync(path, "utf8")) : [];
        if (predicate(lines)) return lines;
        if (Date.now() > deadline) {
          let state = "";
          if (!target.startsWith("/")) {
            const s = await containerStatus(target).catch(() => undefined);
            state = s ? ` (container ${ContainerState[s.state]}, exit ${s.exitCode}, ${s.reason} ${s.message})` : "";
          }
          throw new Error(
            `log ${path}${state} did not match within ${timeoutMs} ms; it holds:\n${lines.map((l) => `${l.stream}: ${l.text}`).join("\n")}\n--- containerd.log (tail) ---\n${ctd.logTail(3000)}`,
          );
        }
        await Bun.sleep(100);
      }
    },

    async stopAndRemoveContainer(id, timeoutSec = 0) {
      // A container that is exiting on its own races StopContainer inside containerd 1.6
      // ("ttrpc: closed", "context canceled", "container is still running"): try again until
      // it settles.
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          await runtime.stopContainer({ containerId: id, timeout: BigInt(timeoutSec) }, call);
          await runtime.removeContainer({ containerId: id }, call);
          return;
        } catch (err) {
          if (isNotFound(err)) return;
          const racy = KILL_RACE.test((err as Error).message) || /still running/.test((err as Error).message);
          if (!racy || Date.now() > deadline) {
            throw new Error(`CRI stop/remove container ${id}: ${(err as Error).message}\n${ctd.logTail(3000)}`, { cause: err });
          }
          await Bun.sleep(200);
        }
      }
    },

    removePod,

    async stop() {
      if (ctd.process.hasExited()) return;
      const pods = (await explain("ListPodSandbox", runtime.listPodSandbox({}, call))).items;
      for (const p of pods) await removePod(p.id);
    },
  };
}
