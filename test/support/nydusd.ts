// Starts `rafsnap nydusd` (the compiled binary) for data-plane tests.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RegistryClient } from "../../src/registry/index.ts";
import { pushDirImage } from "../harness/oci-image.ts";
import { type ChildProcess, run, spawnProcess, waitFor } from "../harness/process.ts";
import { requireBinary, SYSTEM_PATH } from "./binary.ts";

/** A running daemon: its process, mountpoint, API socket and an API caller. */
export interface NydusdProcess {
  proc: ChildProcess;
  mnt: string;
  sock: string;
  /** Calls the daemon's HTTP API. */
  api(method: string, path: string, body?: unknown): Promise<Response>;
  /** `GET /api/v1/daemon`'s state, or "" while the API is not up. */
  state(): Promise<string>;
}

/** The fusedev config of a registry backend (`scheme: http`) with a blob cache in `workDir`. */
export function registryConfig(host: string, repo: string, workDir: string, extra: object = {}): object {
  return {
    device: {
      backend: { type: "registry", config: { host, repo, scheme: "http" } },
      cache: { type: "blobcache", config: { work_dir: workDir } },
    },
    digest_validate: true,
    ...extra,
  };
}

/** The fusedev config of a localfs backend (blobs named by id in `blobDir`). */
export function localfsConfig(blobDir: string, workDir: string): object {
  return {
    device: {
      backend: { type: "localfs", config: { dir: blobDir } },
      cache: { type: "blobcache", config: { work_dir: workDir } },
    },
    digest_validate: true,
  };
}

/**
 * Starts `rafsnap nydusd fuse` named `name` in `dir` (config `<dir>/<name>.json`, mountpoint
 * `<dir>/<name>-mnt`, socket `<dir>/<name>.sock`, log `<dir>/<name>.log`, blobfs under
 * `<dir>/run`) with `config` and, unless `shared`, the `bootstrap`; waits until RUNNING.
 * Throws with the log tail when it does not get there. The caller stops `proc`.
 */
export async function startNydusd(
  dir: string,
  name: string,
  config: object,
  opts: { bootstrap?: string; args?: string[]; env?: Record<string, string>; onStart?: (p: ChildProcess) => void } = {},
): Promise<NydusdProcess> {
  const cfg = join(dir, `${name}.json`);
  writeFileSync(cfg, JSON.stringify(config));
  const mnt = join(dir, `${name}-mnt`);
  const sock = join(dir, `${name}.sock`);
  const proc = spawnProcess({
    cmd: [
      requireBinary(),
      "nydusd",
      "--apisock",
      sock,
      "fuse",
      "--config",
      cfg,
      "--mountpoint",
      mnt,
      ...(opts.bootstrap ? ["--bootstrap", opts.bootstrap] : []),
      ...(opts.args ?? []),
    ],
    logFile: join(dir, `${name}.log`),
    env: { PATH: SYSTEM_PATH, RAFSNAP_RUN_DIR: join(dir, "run"), ...opts.env },
  });
  opts.onStart?.(proc);
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`http://localhost${path}`, { method, unix: sock, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);
  const state = async () => {
    try {
      return ((await (await api("GET", "/api/v1/daemon")).json()) as { state: string }).state;
    } catch {
      return "";
    }
  };
  await waitFor(
    `nydusd ${name} RUNNING`,
    async () => (await state()) === "RUNNING",
    20_000,
    () => !proc.hasExited(),
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\n${proc.logTail()}`);
  });
  return { proc, mnt, sock, api, state };
}

/**
 * Converts `repo:srcTag` to `repo:dstTag` with the compiled `rafsnap convert` (extra
 * environment, e.g. DOCKER_CONFIG, in `env`), then downloads the nydus image's bootstrap layer
 * and unpacks it into `dir`. Returns the bootstrap's path (`<dir>/image/image.boot`) and the
 * image's layer digests. Throws with convert's stderr when it fails.
 */
export async function convertAndFetchBootstrap(
  client: RegistryClient,
  repo: string,
  srcTag: string,
  dstTag: string,
  dir: string,
  env: Record<string, string> = {},
): Promise<{ boot: string; layers: string[] }> {
  const conv = await run([requireBinary(), "convert", "--source", `${client.host}/${repo}:${srcTag}`, "--target", `${client.host}/${repo}:${dstTag}`], {
    env: { PATH: SYSTEM_PATH, ...env },
    timeoutMs: 120_000,
  });
  if (conv.code !== 0) throw new Error(`rafsnap convert: ${conv.stderr}`);
  const m = JSON.parse(new TextDecoder().decode((await client.getManifest(repo, dstTag)).bytes)) as { layers: { digest: string }[] };
  const layers = m.layers.map((l) => l.digest);
  writeFileSync(join(dir, "boot.tgz"), await client.readBlob(repo, layers.at(-1) as string));
  const t = await run(["tar", "-xzf", join(dir, "boot.tgz"), "-C", dir]);
  if (t.code !== 0) throw new Error(`tar: ${t.stderr}`);
  return { boot: join(dir, "image/image.boot"), layers };
}

/**
 * Pushes a one-layer OCI image `repo:oci` holding `files` (name → content, at the root), then
 * converts it to `repo:nydus` (see {@link convertAndFetchBootstrap}, whose result this is).
 * Works in `<dir>/<repo>-tree`, `<dir>/<repo>-layer` and `dir`.
 */
export async function pushNydusImage(
  client: RegistryClient,
  repo: string,
  dir: string,
  files: Record<string, Uint8Array>,
): Promise<{ boot: string; layers: string[] }> {
  const tree = join(dir, `${repo}-tree`);
  mkdirSync(tree, { recursive: true });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(tree, name), data);
  await pushDirImage(client, repo, "oci", tree, join(dir, `${repo}-layer`));
  return convertAndFetchBootstrap(client, repo, "oci", "nydus", dir);
}
