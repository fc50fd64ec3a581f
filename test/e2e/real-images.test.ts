// Real Debian images (minbase + python3 / nodejs / gcc libc6-dev, two layers, built from
// Debian's packages: test/harness/debian-images.ts) converted by `rafsnap convert` and served by
// the compiled `rafsnap nydusd` from a docker-registry (whose own log counts the bytes served). Every path of
// the served tree is compared with the source tree (type, mode, owner, size, sha256, symlink
// target, rdev, hard-link groups, xattrs: test/support/tree-compare.ts):
// - cold, with 1 and with 8 readers, digest_validate on and off, while every core is busy; the
//   full read fetches at most 1.05× the blob bytes and the daemon's metrics report it;
// - a daemon SIGKILLed at a random moment during the read, 5 times, each time started again on
//   the same cache (no digest check, so a chunk marked present without its bytes would show);
//   after each crash no blobfs mount of a dead daemon and no FUSE connection without a server
//   is left, and `sync` returns;
// - failover while a reader runs: the successor takes over and the reader sees the same tree.
import { beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Supervisor } from "../../src/mount/index.ts";
import { RegistryClient } from "../../src/registry/index.ts";
import { useCleanup } from "../harness/cleanup.ts";
import { startCpuLoad } from "../harness/cpu-load.ts";
import { type DebianImage, type DebianImageKind, debianImage, pushDebianImage } from "../harness/debian-images.ts";
import { run, spawnProcess, waitFor } from "../harness/process.ts";
import { rangeBytesServed, type Registry, registryLogSize, startRegistry } from "../harness/registry.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";
import { orphanFuse } from "../support/fuse-orphans.ts";
import { convertAndFetchBootstrap, type NydusdProcess, registryConfig, startNydusd } from "../support/nydusd.ts";
import { compareManifests, type TreeManifest, treeManifest } from "../support/tree-compare.ts";
import { readTreeInChild } from "../support/tree-read.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/real-images.test.ts needs root (mmdebstrap, FUSE, EROFS); run it as root as CI does");

/** An image ready to serve: its bootstrap, blob bytes and the source tree's manifest. */
interface Served {
  kind: DebianImageKind;
  image: DebianImage;
  boot: string;
  blobBytes: number;
  manifest: TreeManifest;
}

const dropCaches = () => writeFileSync("/proc/sys/vm/drop_caches", "3");

describe.skipIf(!isRoot)("real Debian images through rafsnap nydusd", () => {
  const cleanup = useCleanup();
  let dir = "";
  let reg: Registry;
  const served = new Map<DebianImageKind, Served>();
  let n = 0;

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-real-");
    reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const c = new RegistryClient(reg.host);
    for (const kind of ["python", "node", "gcc"] as const) {
      const image = await debianImage(kind);
      await pushDebianImage(c, kind, "oci", image, join(dir, `${kind}-push`));
      const work = join(dir, kind);
      await run(["mkdir", "-p", work]);
      const { boot, layers } = await convertAndFetchBootstrap(c, kind, "oci", "nydus", work);
      const m = JSON.parse(new TextDecoder().decode((await c.getManifest(kind, "nydus")).bytes)) as { layers: { digest: string; size: number }[] };
      const blobBytes = m.layers.slice(0, -1).reduce((a, l) => a + l.size, 0);
      expect(layers.length).toBe(3); // two data blobs and the bootstrap
      served.set(kind, { kind, image, boot, blobBytes, manifest: await treeManifest(image.tree) });
    }
  }, 1_200_000);

  const config = (s: Served, cache: string, dv: boolean) => registryConfig(reg.host, s.kind, cache, { digest_validate: dv });

  async function daemon(s: Served, cache: string, dv: boolean, args: string[] = []): Promise<NydusdProcess> {
    const name = `d${++n}`;
    return startNydusd(dir, name, config(s, cache, dv), { bootstrap: s.boot, args, onStart: (p) => cleanup.add(name, p) });
  }

  /** Reads the whole served tree (in a child process); returns the differences from the source. */
  async function compareServed(s: Served, mnt: string, readers: number): Promise<string[]> {
    return compareManifests(s.manifest, await readTreeInChild(mnt, readers, join(dir, `read-${++n}.json`)));
  }

  for (const kind of ["python", "node", "gcc"] as const) {
    for (const [readers, dv] of [
      [1, true],
      [8, false],
    ] as const) {
      test(`${kind}: cold, ${readers} reader(s), digest_validate ${dv ? "on" : "off"}, CPUs busy: every byte right, each fetched once`, async () => {
        const s = served.get(kind) as Served;
        const nd = await daemon(s, join(dir, `cache-${kind}-${readers}-${dv}`), dv);
        const mark = registryLogSize(reg); // after the mount (the CI tables): only data reads count
        const load = startCpuLoad();
        cleanup.defer("cpu load", () => load.stop());
        let diffs: string[];
        try {
          dropCaches();
          diffs = await compareServed(s, nd.mnt, readers);
        } finally {
          await load.stop();
        }
        const metrics = (await (await nd.api("GET", "/api/v1/metrics/backend")).json()) as { read_count: number; read_amount_total: number };
        expect(await nd.proc.stop()).toBe(0);
        const { bytes: fetched, requests } = rangeBytesServed(reg, mark);
        console.log(
          `${kind}: ${s.manifest.size} paths, ${readers} reader(s), dv ${dv}: fetched ${fetched} of ${s.blobBytes} blob bytes (${(fetched / s.blobBytes).toFixed(3)}×) in ${requests} requests`,
        );
        expect(diffs.slice(0, 20)).toEqual([]);
        expect(fetched).toBeLessThanOrEqual(1.05 * s.blobBytes);
        expect(fetched).toBeGreaterThan(0.5 * s.blobBytes);
        // The daemon's metrics count what it fetched (a retried request counts once there).
        expect(metrics.read_amount_total).toBeLessThanOrEqual(fetched);
        expect(metrics.read_amount_total).toBeGreaterThan(0.9 * fetched);
        expect(metrics.read_count).toBeGreaterThan(0);
        expect(metrics.read_count).toBeLessThanOrEqual(requests);
      }, 600_000);
    }
  }

  test("gcc: SIGKILL at a random moment during reads, 5 rounds on one cache; no orphans; then every byte right", async () => {
    const s = served.get("gcc") as Served;
    const cache = join(dir, "cache-crash");
    for (let round = 1; round <= 5; round++) {
      const nd = await daemon(s, cache, false);
      dropCaches();
      let settled = false;
      const reading = readTreeInChild(nd.mnt, 8, join(dir, `crash-${round}.json`))
        .catch((e: Error) => e)
        .finally(() => (settled = true));
      await Bun.sleep(100 + Math.floor(Math.random() * 900));
      // The first round is surely killed during its (cold) read; later ones may find most of
      // the tree cached already and be done sooner.
      if (round === 1) expect(settled).toBe(false);
      console.log(`crash round ${round}: SIGKILL ${settled ? "after" : "during"} the read`);
      process.kill(nd.proc.pid, "SIGKILL");
      await nd.proc.exited;
      await reading; // errors expected: the server is gone
      // The dead daemon's RAFS mount is the caller's to remove (the snapshotter's manager
      // clears it with the vestiges); its blobfs is reaped by the next daemon of this run root.
      await run(["umount", "-l", nd.mnt]);
      const probe = await daemon(s, cache, false);
      expect(orphanFuse(join(dir, "run"))).toEqual([]);
      expect((await run(["sync"], { timeoutMs: 60_000 })).code).toBe(0);
      if (round === 5) {
        dropCaches();
        const diffs = await compareServed(s, probe.mnt, 8);
        expect(diffs.slice(0, 20)).toEqual([]);
      }
      expect(await probe.proc.stop()).toBe(0);
    }
    expect(orphanFuse(join(dir, "run"))).toEqual([]);
  }, 900_000);

  test("node: failover while a reader runs: the successor takes over, the reader sees the source tree", async () => {
    const s = served.get("node") as Served;
    const cfg = join(dir, "failover.json");
    writeFileSync(cfg, JSON.stringify(config(s, join(dir, "cache-failover"), true)));
    const mnt = join(dir, "failover-mnt");
    const sock = join(dir, "failover.sock");
    const supSock = join(dir, "failover-sup.sock");
    const args = ["nydusd", "--id", "f1", "--supervisor", supSock, "fuse", "--config", cfg, "--bootstrap", s.boot, "--mountpoint", mnt, "--apisock", sock];
    const env = { PATH: SYSTEM_PATH, RAFSNAP_RUN_DIR: join(dir, "run") };
    const api = (method: string, path: string) => fetch(`http://localhost${path}`, { method, unix: sock } as RequestInit);
    const state = async () => {
      try {
        return ((await (await api("GET", "/api/v1/daemon")).json()) as { state: string }).state;
      } catch {
        return "";
      }
    };
    const first = cleanup.add("failover d1", spawnProcess({ cmd: [requireBinary(), ...args], logFile: join(dir, "f1.log"), env }));
    await waitFor(
      "RUNNING",
      async () => (await state()) === "RUNNING",
      20_000,
      () => !first.hasExited(),
    );
    const sup = new Supervisor(supSock);
    cleanup.defer("supervisor", () => sup.close());
    await sup.save(async () => {
      expect((await api("PUT", "/api/v1/daemon/fuse/sendfd")).status).toBe(204);
    });
    dropCaches();
    let settled = false;
    const reading = readTreeInChild(mnt, 4, join(dir, "failover-read.json")).finally(() => (settled = true));
    await Bun.sleep(400);
    expect(settled).toBe(false); // killed during the read
    process.kill(first.pid, "SIGKILL");
    await first.exited;
    const second = cleanup.add("failover d2", spawnProcess({ cmd: [requireBinary(), ...args], logFile: join(dir, "f2.log"), env }));
    await waitFor(
      "INIT",
      async () => (await state()) === "INIT",
      20_000,
      () => !second.hasExited(),
    );
    await sup.restore(async () => {
      const r = await api("PUT", "/api/v1/daemon/fuse/takeover");
      if (r.status !== 204) throw new Error(`takeover: ${r.status} ${await r.text()}\n${second.logTail()}`);
    });
    expect((await api("PUT", "/api/v1/daemon/start")).status).toBe(204);
    const got = await reading;
    expect(compareManifests(s.manifest, got).slice(0, 20)).toEqual([]);
    expect(await second.stop()).toBe(0);
    expect(orphanFuse(join(dir, "run"))).toEqual([]);
  }, 600_000);
});
