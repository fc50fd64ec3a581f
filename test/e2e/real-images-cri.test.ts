// Real Debian images (test/harness/debian-images.ts: mmdebstrap minbase + python3, nodejs, gcc;
// two layers each) through Kubernetes CRI with rafsnap, against containerd's own overlayfs. The
// OCI images are pushed to a registry on 127.0.0.1 and converted there by `rafsnap convert`;
// containerd 1.6's CRI, with rafsnap (compiled) as its "nydus" snapshotter, pulls the nydus
// images (the layer annotations come from CRI's pull) and runs a workload in each
// (test/support/debian-workloads.ts: python modules, node's crypto/http/zlib, gcc compiling and
// running a C program). The same command runs on the OCI image through `ctr run` with the
// overlayfs snapshotter in the same containerd. The two stdouts must be identical, right and
// non-empty, with nothing on stderr, and the nydus image must really have been served lazily
// by a rafsnap daemon: data layers committed without being unpacked, one RAFS instance per
// image, its blob cache grown by less than half the image's size. Removing the images empties
// the cache. Daemon modes dedicated and shared, each with its own rafsnap and containerd.
// Root only; a cold image cache builds the images first (minutes, see debian-images.ts).
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { Label } from "../../src/snapshot/index.ts";
import { Cleanup, useCleanup } from "../harness/cleanup.ts";
import { type Containerd, startContainerd } from "../harness/containerd.ts";
import { type CriHarness, type CriLogLine, criHarness } from "../harness/cri.ts";
import { type DebianImageKind, debianImage, pushDebianImage } from "../harness/debian-images.ts";
import { isAlive, run, stopPid } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";
import { DEBIAN_WORKLOADS, WORKLOAD_END } from "../support/debian-workloads.ts";
import { type RafsnapServer, startRafsnap } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/real-images-cri.test.ts needs root (mounts, runc, mmdebstrap); run it as root as CI does");

const KINDS: readonly DebianImageKind[] = ["python", "node", "gcc"];
const BLOB = Label.NydusDataLayer;
const BOOT = Label.NydusMetaLayer;
const IMAGE_REF = Label.CRIImageRef;
const secs = (t0: number) => ((performance.now() - t0) / 1000).toFixed(1);

/** An image in the registry: the OCI original, its nydus conversion and their sizes. */
interface PushedPair {
  oci: string;
  nydus: string;
  /** Bytes of the uncompressed OCI layer tars (about what a full unpack would write). */
  layerBytes: number;
  /** Compressed bytes of the nydus image's data blobs (the bootstrap layer not counted). */
  blobBytes: number;
}

/** containerd (CRI on rafsnap) and rafsnap for one daemon mode. */
interface CriNode {
  ctd: Containerd;
  cri: CriHarness;
  rafsnap: RafsnapServer;
  root: string;
  rows<T>(sql: string): T[];
  stop(): Promise<void>;
}

/**
 * Starts `rafsnap serve` in `daemonMode` (its nydusd a link to the compiled binary, as
 * packaged) and containerd with CRI on it; imports the sandbox image. `stop()` stops containerd,
 * rafsnap and then the daemons rafsnap recorded (they outlive it by design), by pid.
 */
async function startCriNode(dir: string, daemonMode: "dedicated" | "shared"): Promise<CriNode> {
  const cleanup = new Cleanup();
  try {
    const rdir = join(dir, "rafsnap");
    mkdirSync(rdir, { recursive: true });
    const root = join(rdir, "root");
    symlinkSync(requireBinary(), join(rdir, "nydusd"));
    const config = join(rdir, "config.toml");
    writeFileSync(config, ["version = 1", `daemon_mode = "${daemonMode}"`, "[daemon]", `nydusd_path = ${JSON.stringify(join(rdir, "nydusd"))}`, ""].join("\n"));
    const rows = <T>(sql: string): T[] => {
      if (!existsSync(join(root, "rafsnap.db"))) return [];
      const db = new Database(join(root, "rafsnap.db"), { readonly: true });
      try {
        return db.query(sql).all() as T[];
      } finally {
        db.close();
      }
    };
    cleanup.defer("nydusd daemons", async () => {
      for (const { pid } of rows<{ pid: number }>("SELECT pid FROM daemons")) if (pid > 0 && isAlive(pid)) await stopPid(pid);
    });
    const rafsnap = cleanup.add("rafsnap", await startRafsnap(rdir, { root, args: ["--config", config] }));
    const ctd = cleanup.add(
      "containerd",
      await startContainerd({ dir: join(dir, "containerd"), proxySnapshotters: { nydus: rafsnap.socket }, cri: { snapshotter: "nydus" } }),
    );
    const cri = cleanup.add("cri pods", criHarness(ctd, { dir: join(dir, "cri"), snapshotter: "nydus" }));
    await cri.importSandboxImage();
    return { ctd, cri, rafsnap, root, rows, stop: () => cleanup.run() };
  } catch (e) {
    await cleanup.run().catch(() => {});
    throw e;
  }
}

/** Disk space (allocated blocks: cache files may be sparse) of the regular files below `dir`. */
function bytesUnder(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, name), { throwIfNoEntry: false });
    if (st?.isFile()) n += st.blocks * 512;
  }
  return n;
}

/** Names in a directory (none when it does not exist). */
const filesIn = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);

/** The lines of `text`, without the empty one after a final newline. */
const linesOf = (text: string) => text.split("\n").filter((l, i, all) => l !== "" || i < all.length - 1);

describe.skipIf(!isRoot)("real Debian images through CRI: rafsnap (nydus) vs containerd overlayfs", () => {
  const cleanup = useCleanup();
  let dir = "";
  let registry: Registry;
  const images = new Map<DebianImageKind, PushedPair>();

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-realcri-");
    registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const client = new RegistryClient(registry.host);
    mkdirSync(join(dir, "push"));
    for (const kind of KINDS) {
      const t0 = performance.now();
      const image = await debianImage(kind);
      const repo = `debian/${kind}`;
      await pushDebianImage(client, repo, "oci", image, join(dir, "push", kind));
      const t1 = performance.now();
      const oci = `${registry.host}/${repo}:oci`;
      const nydus = `${registry.host}/${repo}:nydus`;
      const conv = await run([requireBinary(), "convert", "--source", oci, "--target", nydus], { env: { PATH: SYSTEM_PATH }, timeoutMs: 240_000 });
      if (conv.code !== 0 || conv.timedOut) throw new Error(`rafsnap convert ${oci}: ${conv.timedOut ? "timed out" : `exit ${conv.code}`}\n${conv.stderr}`);
      const manifest = JSON.parse(new TextDecoder().decode((await client.getManifest(repo, "nydus")).bytes)) as { layers: { size: number }[] };
      // Two data blobs (one per OCI layer) and the bootstrap.
      expect(manifest.layers).toHaveLength(3);
      const blobBytes = manifest.layers.slice(0, -1).reduce((n, l) => n + l.size, 0);
      const layerBytes = image.layers.reduce((n, tar) => n + Bun.file(tar).size, 0);
      images.set(kind, { oci, nydus, layerBytes, blobBytes });
      console.log(
        `[real-images-cri] ${kind}: pushed in ${((t1 - t0) / 1000).toFixed(1)} s, converted in ${secs(t1)} s (${(blobBytes / 1e6).toFixed(0)} MB of nydus blobs)`,
      );
    }
    // The scratch gzips of the push are no longer needed.
    rmSync(join(dir, "push"), { recursive: true, force: true });
  }, 600_000);

  for (const mode of ["dedicated", "shared"] as const) {
    describe(`daemon_mode ${mode}`, () => {
      let node: CriNode;
      beforeAll(async () => {
        node = await startCriNode(join(dir, mode), mode);
      }, 120_000);
      afterAll(() => node?.stop());

      for (const kind of KINDS) {
        test(`${kind}: the workload prints the same on the nydus image (CRI) as on the OCI image (overlayfs)`, async () => {
          const { ctd, cri } = node;
          const pair = images.get(kind);
          if (!pair) throw new Error(`image ${kind} was not prepared`);
          const workload = DEBIAN_WORKLOADS[kind];

          // Reference: the OCI image through containerd's overlayfs, host network like the pod.
          let t0 = performance.now();
          await ctd.ctrOk(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", pair.oci], { timeoutMs: 180_000 });
          const tPull = secs(t0);
          t0 = performance.now();
          const ref = await ctd.ctr(["run", "--rm", "--net-host", "--snapshotter", "overlayfs", pair.oci, `oci-${kind}`, ...workload.command], {
            timeoutMs: 120_000,
          });
          const tRun = secs(t0);
          if (ref.code !== 0) throw new Error(`ctr run ${pair.oci} exited ${ref.code}\n--- stderr ---\n${ref.stderr}\n--- stdout ---\n${ref.stdout}`);
          expect(ref.stderr).toBe("");
          const expected = linesOf(ref.stdout);
          workload.verify(expected);

          // The nydus image through CRI: pulled without its data layers, run lazily.
          t0 = performance.now();
          await cri.pullImage(pair.nydus);
          const tNydusPull = secs(t0);
          // The image's bootstrap layer sits on its two data layers (shared with images pulled
          // before when they have the same content): committed, nothing unpacked into them.
          const snaps = node
            .rows<{ id: number; parent_id: number | null; kind: string; labels: string }>("SELECT id, parent_id, kind, labels FROM snapshots")
            .map((r) => ({ ...r, labels: JSON.parse(r.labels) as Record<string, string> }));
          const meta = snaps.filter((s) => BOOT in s.labels && s.labels[IMAGE_REF] === pair.nydus);
          expect(meta).toHaveLength(1);
          const chain: typeof snaps = [];
          for (let s = snaps.find((x) => x.id === meta[0]?.parent_id); s; s = snaps.find((x) => x.id === s?.parent_id)) chain.push(s);
          expect(chain.map((s) => [s.kind, BLOB in s.labels])).toEqual([
            ["committed", true],
            ["committed", true],
          ]);
          for (const s of chain) {
            expect(existsSync(join(node.root, "snapshots", String(s.id)))).toBe(true);
            expect(filesIn(join(node.root, "snapshots", String(s.id), "fs"))).toEqual([]);
          }
          const cacheBefore = bytesUnder(join(node.root, "cache"));
          const pod = await cri.runPod(`real-${kind}-${mode}`);
          t0 = performance.now();
          const c = await cri.startContainer(pod, { image: pair.nydus, command: workload.command });
          let lines: CriLogLine[];
          try {
            lines = await cri.waitForLog(c.id, (l) => l.some((x) => x.stream === "stdout" && x.text === WORKLOAD_END), 120_000);
          } catch (e) {
            throw new Error(`${(e as Error).message}\n--- rafsnap.log (tail) ---\n${node.rafsnap.proc.logTail(3000)}`);
          }
          expect((await cri.waitForExit(c.id)).exitCode).toBe(0);
          const tNydusRun = secs(t0);
          const got = lines.filter((l) => l.stream === "stdout").map((l) => l.text);
          expect(lines.filter((l) => l.stream === "stderr").map((l) => l.text)).toEqual([]);
          expect(got.length).toBeGreaterThan(1);
          expect(got).toEqual(expected);
          workload.verify(got);

          // Served by a rafsnap daemon, and lazily: the blob cache (uncompressed chunks) grew by
          // well under the image's size (about 15-30 % of it is read).
          const instances = node.rows<{ image_id: string }>("SELECT image_id FROM instances").map((r) => r.image_id);
          expect(instances).toContain(pair.nydus);
          const cached = bytesUnder(join(node.root, "cache")) - cacheBefore;
          console.log(
            `[real-images-cri] ${mode} ${kind}: overlayfs pull ${tPull} s, run ${tRun} s; nydus pull ${tNydusPull} s, run ${tNydusRun} s; ` +
              `blob cache grew ${(cached / 1e6).toFixed(1)} MB; layers ${(pair.layerBytes / 1e6).toFixed(0)} MB, nydus blobs ${(pair.blobBytes / 1e6).toFixed(0)} MB`,
          );
          expect(cached).toBeGreaterThan(0);
          expect(cached).toBeLessThan(pair.layerBytes / 2);

          await cri.stopAndRemoveContainer(c.id);
          await cri.removePod(pod);
        }, 300_000);
      }

      test("removing the nydus images frees their instances and the blob cache", async () => {
        const { ctd, cri } = node;
        for (const kind of KINDS) {
          const pair = images.get(kind);
          if (pair && (await cri.imageStatus(pair.nydus))) await cri.removeImage(pair.nydus);
        }
        await ctd.gc({ namespace: "k8s.io" });
        expect(node.rows("SELECT * FROM instances")).toEqual([]);
        expect(bytesUnder(join(node.root, "cache"))).toBe(0);
        const daemons = node.rows<{ mode: string }>("SELECT mode FROM daemons").map((d) => d.mode);
        expect(daemons).toEqual(mode === "shared" ? ["shared"] : []);
      }, 120_000);
    });
  }
});
