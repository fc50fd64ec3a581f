// Benchmark (not a test): latency of snapshot operations through containerd, rafsnap vs the Go
// nydus snapshotter (containerd-nydus-grpc 0.13.4 from Debian trixie) in the same run.
//
//   bun bench/snapshot-ops.ts [--iterations 300] [--ctr-iterations 40]
//
// One private containerd (Debian 1.6) gets both as proxy plugins: `rafsnap` → dist/rafsnap,
// `nydus-go` → the peer (../shared/conformance/peer/peer.sh fetches and starts it). Two modes:
//  - grpc: a typed client of containerd's own snapshots service (connect-node) runs
//    Prepare → Mounts → Commit → Stat → Remove on top of a committed base layer; each call
//    goes client → containerd (metadata) → proxy → snapshotter. Iterations alternate between
//    the two snapshotters so drift on the machine hits both alike.
//  - ctr: the same five operations as `ctr snapshots …` commands (process start included).
// containerd's Remove deletes its metadata at once and the backend snapshot at the next GC,
// so Remove mostly measures containerd; a GC is run between rounds. Prints p50/p99 (ms) and
// the p50 ratio rafsnap/Go. Root only.
import { join } from "node:path";
import { Cleanup } from "../test/harness/cleanup.ts";
import { startContainerd } from "../test/harness/containerd.ts";
import { spawnProcess, waitFor } from "../test/harness/process.ts";
import { socketAccepts } from "../src/mount/index.ts";
import { startRafsnap } from "../test/support/rafsnap.ts";
import { type SnapshotsClient, snapshotsClient } from "../test/support/snapshots-client.ts";

const OPS = ["Prepare", "Mounts", "Commit", "Stat", "Remove"] as const;
type Op = (typeof OPS)[number];
type Samples = Record<Op, number[]>;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

/** containerd garbage-collects unreferenced snapshots at once; this label keeps ours. */
const ROOT = { "containerd.io/gc.root": "bench" };

const newSamples = (): Samples => ({ Prepare: [], Mounts: [], Commit: [], Stat: [], Remove: [] });

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

async function timed<T>(samples: number[], fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  samples.push(performance.now() - t0);
  return r;
}

async function grpcRound(c: SnapshotsClient, sn: string, i: number, base: string, s: Samples): Promise<void> {
  const key = `bench-${sn}-a${i}`;
  const name = `bench-${sn}-c${i}`;
  await timed(s.Prepare, () => c.prepare({ snapshotter: sn, key, parent: base, labels: ROOT }));
  await timed(s.Mounts, () => c.mounts({ snapshotter: sn, key }));
  await timed(s.Commit, () => c.commit({ snapshotter: sn, name, key, labels: ROOT }));
  await timed(s.Stat, () => c.stat({ snapshotter: sn, key: name }));
  await timed(s.Remove, () => c.remove({ snapshotter: sn, key: name }));
}

function table(title: string, names: [string, string], a: Samples, b: Samples): string {
  const rows = [
    `${title}`,
    `| op | ${names[0]} p50 | ${names[0]} p99 | ${names[1]} p50 | ${names[1]} p99 | p50 ratio |`,
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const op of OPS) {
    const [a50, a99, b50, b99] = [pct(a[op], 50), pct(a[op], 99), pct(b[op], 50), pct(b[op], 99)];
    rows.push(`| ${op} | ${a50.toFixed(2)} | ${a99.toFixed(2)} | ${b50.toFixed(2)} | ${b99.toFixed(2)} | ${(a50 / b50).toFixed(2)}× |`);
  }
  return rows.join("\n");
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (containerd and the snapshotters need it)");
  const iterations = arg("iterations", 300);
  const ctrIterations = arg("ctr-iterations", 40);
  const cleanup = new Cleanup();
  try {
    const dir = cleanup.tempDir("rafsnap-bench-");
    const peerScript = join(import.meta.dir, "../../shared/conformance/peer/peer.sh");
    const rafsnap = cleanup.add("rafsnap", await startRafsnap(join(dir, "rafsnap"), { args: ["--log-level", "warn"] }));
    const peerSock = join(dir, "peer.sock");
    const peer = cleanup.add(
      "nydus-go",
      spawnProcess({
        cmd: ["bash", peerScript, join(dir, "peer-root"), peerSock, join(dir, "peer")],
        logFile: join(dir, "peer.log"),
        env: { NYDUS_LOG_LEVEL: "warn" },
      }),
    );
    await waitFor(
      "Go nydus snapshotter socket",
      () => socketAccepts(peerSock),
      60_000,
      () => !peer.hasExited(),
    );
    const ctd = cleanup.add(
      "containerd",
      await startContainerd({
        dir: join(dir, "containerd"),
        proxySnapshotters: { rafsnap: rafsnap.socket, "nydus-go": peerSock },
        // GC only when the bench asks (ctd.gc()): `ctr snapshots commit` cannot set the
        // gc.root label, and a collection between commit and info would remove the snapshot.
        gcMutationThreshold: 1_000_000_000,
      }),
    );
    const client = snapshotsClient(ctd.address, { namespace: ctd.namespace });
    const names: [string, string] = ["rafsnap", "nydus-go"];
    for (const sn of names) {
      await client.prepare({ snapshotter: sn, key: `base-${sn}-a`, parent: "", labels: ROOT });
      await client.commit({ snapshotter: sn, name: `base-${sn}`, key: `base-${sn}-a`, labels: ROOT });
    }
    // warm-up, not recorded
    for (let i = 0; i < 20; i++) for (const sn of names) await grpcRound(client, sn, -1 - i, `base-${sn}`, newSamples());
    const grpc = { rafsnap: newSamples(), "nydus-go": newSamples() };
    for (let i = 0; i < iterations; i++) {
      for (const sn of i % 2 ? [...names].reverse() : names) await grpcRound(client, sn, i, `base-${sn}`, grpc[sn as "rafsnap"]);
      if (i % 100 === 99) await ctd.gc();
    }
    const ctr = { rafsnap: newSamples(), "nydus-go": newSamples() };
    const sh = (args: string[]) => ctd.ctrOk(["snapshots", ...args]);
    for (let i = 0; i < ctrIterations; i++) {
      for (const sn of i % 2 ? [...names].reverse() : names) {
        const s = ctr[sn as "rafsnap"];
        const key = `ctr-${sn}-a${i}`;
        const name = `ctr-${sn}-c${i}`;
        // ctr snapshots prepare labels the snapshot containerd.io/gc.root itself
        await timed(s.Prepare, () => sh(["--snapshotter", sn, "prepare", key, `base-${sn}`]));
        await timed(s.Mounts, () => sh(["--snapshotter", sn, "mounts", "/mnt", key]));
        await timed(s.Commit, () => sh(["--snapshotter", sn, "commit", name, key]));
        await timed(s.Stat, () => sh(["--snapshotter", sn, "info", name]));
        await timed(s.Remove, () => sh(["--snapshotter", sn, "rm", name]));
      }
    }
    await ctd.gc();
    console.log(`snapshot operation latency through containerd 1.6 (ms); ${iterations} gRPC rounds, ${ctrIterations} ctr rounds per snapshotter\n`);
    console.log(table("gRPC client → containerd snapshots service → proxy snapshotter", names, grpc.rafsnap, grpc["nydus-go"]));
    console.log();
    console.log(table("ctr snapshots … (one ctr process per operation)", names, ctr.rafsnap, ctr["nydus-go"]));
  } finally {
    await cleanup.run();
  }
}

await main();
