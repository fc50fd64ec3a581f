// A node for nydus end-to-end tests: a registry on 127.0.0.1 with the test images and their
// nydus conversions (made by `rafsnap convert`), `rafsnap serve` (compiled) as containerd's
// "nydus" proxy snapshotter with a config.toml written here, containerd with CRI using it, and
// the CRI harness. Daemons rafsnap starts are detached by design (they outlive it); `stop()`
// stops exactly the pids rafsnap recorded in its database, then everything else.
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { noise, pushDirImage } from "../harness/oci-image.ts";
import { type Containerd, startContainerd } from "../harness/containerd.ts";
import { type ContainerdMajor, containerdOf } from "../harness/containerd-versions.ts";
import { type CriHarness, criHarness } from "../harness/cri.ts";
import { BUILD_IMAGES } from "../harness/images.ts";
import { isAlive, run, stopPid, waitFor } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { requireBinary } from "./binary.ts";
import { rafsnapCli, type RafsnapServer, startRafsnap } from "./rafsnap.ts";

/** Size of `/big` in the `big` image. */
export const BIG_BYTES = 16 << 20;

/** Options of {@link startNydusNode}. */
export interface NydusNodeOptions {
  daemonMode: "dedicated" | "shared";
  recoverPolicy?: "none" | "restart" | "failover";
  /** containerd 1.x (system, default) or 2.x (see test/harness/containerd-versions.ts). */
  containerd?: ContainerdMajor;
  /** Extra TOML appended to rafsnap's config. */
  extraToml?: string;
}

/** A running node. */
export interface NydusNode {
  dir: string;
  registry: Registry;
  ctd: Containerd;
  cri: CriHarness;
  rafsnap: RafsnapServer;
  /** rafsnap's root and cache dir. */
  root: string;
  cacheDir: string;
  /** `multi:v1` as OCI and as nydus (`multi:nydus`), refs in the local registry. */
  images: { oci: string; nydus: string; busybox: string; big: string };
  /** Starts rafsnap again on the same root and socket (after it was stopped or killed). */
  restartRafsnap(): Promise<RafsnapServer>;
  /** Pids of the daemons rafsnap recorded. */
  daemonPids(): number[];
  /** Rows of one of rafsnap's tables (read-only). */
  rows<T>(sql: string): T[];
  stop(): Promise<void>;
}

/** Builds the images, converts them, starts registry, rafsnap, containerd (CRI) and the pause image. */
export async function startNydusNode(opts: NydusNodeOptions): Promise<NydusNode> {
  const cleanup = new Cleanup();
  try {
    const dir = cleanup.tempDir("rafsnap-nydus-");
    const registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const b = await run(["bash", BUILD_IMAGES, join(dir, "img"), registry.host], { timeoutMs: 60_000 });
    if (b.code !== 0) throw new Error(`build-image.sh: ${b.stderr}`);
    const images = {
      oci: `${registry.host}/multi:v1`,
      nydus: `${registry.host}/multi:nydus`,
      busybox: `${registry.host}/busybox:nydus`,
      big: `${registry.host}/big:nydus`,
    };
    const conv = await rafsnapCli(["convert", "--source", images.oci, "--target", images.nydus]);
    if (conv.code !== 0) throw new Error(`convert: ${conv.stderr}`);
    // big:v1 — busybox and a 16 MiB file of noise, for usage and lazy-read checks.
    const tree = join(dir, "big-tree");
    mkdirSync(join(tree, "bin"), { recursive: true });
    writeFileSync(join(tree, "bin/busybox"), readFileSync(process.env.BUSYBOX ?? "/bin/busybox"), { mode: 0o755 });
    for (const a of ["sh", "cat", "wc", "sleep"]) symlinkSync("busybox", join(tree, "bin", a));
    writeFileSync(join(tree, "big"), noise(BIG_BYTES));
    writeFileSync(join(tree, "small"), "small file of the big image\n");
    await pushDirImage(new RegistryClient(registry.host), "big", "v1", tree, join(dir, "big-layer"));
    for (const name of ["busybox:single", "big:v1"]) {
      const [repo] = name.split(":");
      const c = await rafsnapCli(["convert", "--source", `${registry.host}/${name}`, "--target", `${registry.host}/${repo}:nydus`]);
      if (c.code !== 0) throw new Error(`convert ${name}: ${c.stderr}`);
    }
    const rdir = join(dir, "rafsnap");
    mkdirSync(rdir);
    const root = join(rdir, "root");
    // nydusd_path: a link named nydusd to the compiled binary (argv0 dispatch), as packaged.
    symlinkSync(requireBinary(), join(rdir, "nydusd"));
    const configPath = join(rdir, "config.toml");
    writeFileSync(
      configPath,
      [
        "version = 1",
        `daemon_mode = "${opts.daemonMode}"`,
        "[daemon]",
        `nydusd_path = ${JSON.stringify(join(rdir, "nydusd"))}`,
        `recover_policy = "${opts.recoverPolicy ?? "restart"}"`,
        opts.extraToml ?? "",
      ].join("\n"),
    );
    const args = ["--config", configPath];
    let rafsnap = await startRafsnap(rdir, { root, args });
    const db = () => new Database(join(root, "rafsnap.db"), { readonly: true });
    const rows = <T>(sql: string): T[] => {
      const d = db();
      try {
        return d.query(sql).all() as T[];
      } finally {
        d.close();
      }
    };
    const daemonPids = () => (existsSync(join(root, "rafsnap.db")) ? rows<{ pid: number }>("SELECT pid FROM daemons").map((r) => r.pid) : []);
    // Daemons outlive rafsnap: stop the ones it recorded (after rafsnap, before the dir goes).
    const killed = new Set<number>();
    cleanup.defer("nydusd daemons", async () => {
      for (const pid of [...daemonPids(), ...killed]) if (pid > 0 && isAlive(pid)) await stopPid(pid);
    });
    cleanup.defer("rafsnap", () => rafsnap.stop());
    const ctd = cleanup.add(
      "containerd",
      await startContainerd({
        dir: join(dir, "containerd"),
        binaries: await containerdOf(opts.containerd ?? 1),
        proxySnapshotters: { nydus: rafsnap.socket },
        cri: { snapshotter: "nydus" },
      }),
    );
    const cri = cleanup.add("cri pods", criHarness(ctd, { dir: join(dir, "cri"), snapshotter: "nydus" }));
    await cri.importSandboxImage();
    return {
      dir,
      registry,
      ctd,
      cri,
      get rafsnap() {
        return rafsnap;
      },
      root,
      cacheDir: join(root, "cache"),
      images,
      async restartRafsnap() {
        for (const p of daemonPids()) killed.add(p);
        rafsnap = await startRafsnap(rdir, { root, args });
        // containerd's proxy client reconnects with a backoff; calls fail until it has.
        await waitFor(
          "containerd reconnected to rafsnap",
          async () => (await ctd.ctr(["snapshots", "--snapshotter", "nydus", "ls"], { namespace: "k8s.io" })).code === 0,
          30_000,
        );
        return rafsnap;
      },
      daemonPids,
      rows,
      stop: () => cleanup.run(),
    };
  } catch (e) {
    await cleanup.run().catch(() => {});
    throw e;
  }
}

/** Files in a directory (none when it does not exist). */
export function filesIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
