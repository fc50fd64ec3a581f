// Benchmark (not a test): a soak of the lazy data path. Real Debian images (test/harness/
// debian-images.ts: minbase + python3 / nodejs / gcc, two layers) converted by
// `dist/rafsnap convert`, served cold by `dist/rafsnap nydusd` from a registry on 127.0.0.1,
// every path of the mounted tree read and compared with the source tree, round after round,
// while every core is kept busy — next to `ctr images pull` of the OCI original into a private
// containerd 1.6 under the same load, in the same run. Root only.
//
//   bun bench/soak.ts [--images python,node,gcc] [--rounds 20] [--readers 8]
//                     [--digest-validate on|off|both] [--ctr-pulls 3] [--load N] [--timeout-s 900]
//
// Setup, once (no CPU load): docker-registry with a counting proxy in front
// (test/harness/flaky-proxy.ts); each image pushed as `debian/<image>:oci` (gzip, as
// `pushDebianImage` does) and converted to `debian/<image>:nydus` by `dist/rafsnap convert`; its
// bootstrap downloaded; the source manifest of the image's full tree computed once
// (`treeManifest(image.tree)`: type, mode, owner, size, sha256, symlink target, rdev, hard-link
// groups, xattrs of every path). "blob" = the sum of the nydus manifest's data layers
// (compressed sizes; the bootstrap layer left out). Then `--load` processes (default: one per
// core) of `sha256sum /dev/zero` start and run until the end; they are checked to be alive
// before and after every measurement, and stopped by PID.
//
// A round, per image and per digest_validate value (`both`: off, then on):
//   - a fresh work dir and cache dir; the proxy's counters reset;
//   - `rafsnap nydusd fuse --bootstrap B --config C` with the registry backend through the
//     proxy (`scheme: http`), `digest_validate` as asked, `fs_prefetch.enable` false; waits
//     for RUNNING (test/support/nydusd.ts `startNydusd`);
//   - `sync; echo 3 > /proc/sys/vm/drop_caches`;
//   - timed ("full read s"): `treeManifest(mountpoint, { concurrency: readers })` — the walk
//     (lstat, readlink, xattrs of every path) and the sha256 of every regular file, `readers`
//     files read at a time — in a child process (this script with `--child-read`), timed
//     there. Not in this process: Bun reads a big file's stream (tree-compare streams files
//     over 8 MiB) on the JS thread, and a FUSE read that waits for a fetch through the
//     counting proxy, served by that same thread, stalls until the daemon's backend times out
//     (5 s) and gets EIO — which an in-process read gave on node and gcc, every run;
//   - "wrong files": distinct paths that `compareManifests(source, served)` reports (missing,
//     unexpected or any field different); the first 10 difference lines are printed. When the
//     walk throws (its first error ends it; Bun's stream errors name no path), the child
//     reads every regular file of the source once more, one by one, and "wrong files" counts
//     those that fail or hash differently (metadata not compared then); the daemon log's first
//     error lines are printed;
//   - "fetched / blob": blob-GET body bytes the proxy forwarded since the reset (the daemon's
//     every fetch: CI tables and data), over "blob";
//   - the daemon gets SIGTERM and must exit 0 within 15 s, leaving no mount under its work
//     dir and removing its `run/nydusd-<pid>` directory; anything else is listed in the
//     "stop" column (and the daemon is killed, mounts detached). The work dir is then removed.
//   Readers: rounds 1, 3, 5, … read `--readers` files at a time, rounds 2, 4, … one at a
//   time (with `--readers 1`, every round one at a time).
//   Peer (rounds 1 to `--ctr-pulls`, per image, after the nydus runs): the image unknown to
//   containerd and its content store and overlayfs snapshots empty (checked), page cache
//   dropped, then timed `ctr images pull --plain-http` (fetch + unpack into containerd's
//   overlayfs snapshotter) of `debian/<image>:oci` through the same proxy; then
//   `ctr images rm --sync` and a synchronous GC so the next pull is cold again. Its
//   "fetched / blob" is the pulled bytes over the OCI image's layer sizes.
// A run that throws (the daemon not starting, the reader killed after `--timeout-s`) is
// recorded as failed and the soak goes on; Ctrl-C stops it, cleaning up. Prints a table after every round, then a summary per image and one per
// image × readers × digest_validate. Exits 1 when any run saw a wrong file, failed, or had a
// stop problem. The proxy runs in this Bun process, the reader in its child, both under the
// same load as the daemon, the registry and containerd. Set RAFSNAP_KEEP_TMP=1 to keep the directory (daemon logs are removed
// with each run's work dir unless the run had a problem: those are kept under `<dir>/failed`).
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { RegistryClient } from "../src/registry/index.ts";
import { daemonRunDir } from "../src/nydusd/index.ts";
import { Cleanup, mountsUnder, removeTree, unmountUnder } from "../test/harness/cleanup.ts";
import { type Containerd, startContainerd } from "../test/harness/containerd.ts";
import { DEBIAN_IMAGES, type DebianImageKind, debianImage, pushDebianImage } from "../test/harness/debian-images.ts";
import { startCpuLoad } from "../test/harness/cpu-load.ts";
import { startFlakyProxy } from "../test/harness/flaky-proxy.ts";
import { type ChildProcess, run, signal } from "../test/harness/process.ts";
import { startRegistry } from "../test/harness/registry.ts";
import { requireBinary } from "../test/support/binary.ts";
import { convertAndFetchBootstrap, registryConfig, startNydusd } from "../test/support/nydusd.ts";
import { compareManifests, type PathRecord, sha256File, type TreeManifest, treeManifest } from "../test/support/tree-compare.ts";

const USAGE = `usage: bun bench/soak.ts [--images python,node,gcc] [--rounds 20] [--readers 8]
                         [--digest-validate on|off|both] [--ctr-pulls 3] [--load N] [--timeout-s 900]`;

/** The value after `--name`, or undefined when the flag is absent. */
function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`--${name} needs a value\n${USAGE}`);
  return v;
}

function intFlag(name: string, def: number, min: number): number {
  const v = flag(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} ${v}: want an integer ≥ ${min}\n${USAGE}`);
  return n;
}

interface Options {
  images: DebianImageKind[];
  rounds: number;
  readers: number;
  digestValidate: boolean[];
  ctrPulls: number;
  load: number;
  timeoutS: number;
}

function options(): Options {
  const known = new Set(["images", "rounds", "readers", "digest-validate", "ctr-pulls", "load", "timeout-s"]);
  for (const a of process.argv.slice(2)) {
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    }
    if (a.startsWith("--") && !known.has(a.slice(2))) throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  const images = (flag("images") ?? "python,node,gcc").split(",").filter(Boolean);
  for (const i of images) if (!(i in DEBIAN_IMAGES)) throw new Error(`--images: unknown image ${i} (have ${Object.keys(DEBIAN_IMAGES).join(", ")})`);
  if (images.length === 0) throw new Error(`--images: none given\n${USAGE}`);
  const dv = flag("digest-validate") ?? "both";
  const digestValidate = { off: [false], on: [true], both: [false, true] }[dv];
  if (!digestValidate) throw new Error(`--digest-validate ${dv}: want on, off or both\n${USAGE}`);
  return {
    images: [...new Set(images)] as DebianImageKind[],
    rounds: intFlag("rounds", 20, 1),
    readers: intFlag("readers", 8, 1),
    digestValidate,
    ctrPulls: intFlag("ctr-pulls", 3, 0),
    load: intFlag("load", availableParallelism(), 0),
    timeoutS: intFlag("timeout-s", 900, 1),
  };
}

/** Writes dirty pages back, then drops clean caches. */
const dropCaches = () => {
  Bun.spawnSync(["sync"]);
  writeFileSync("/proc/sys/vm/drop_caches", "3");
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : Number.NaN);
const sec = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "–");
const ratio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(3)}×` : "–");
const mb = (x: number) => (x / 1e6).toFixed(1);

/** The distinct paths of `compareManifests` lines (`PATH: …`; paths may hold ": "). */
function wrongPaths(diffs: string[], expected: TreeManifest, actual: TreeManifest): Set<string> {
  const out = new Set<string>();
  for (const line of diffs) {
    let path: string | undefined;
    for (let i = line.indexOf(": "); i >= 0; i = line.indexOf(": ", i + 1)) {
      const p = line.slice(0, i);
      if (expected.has(p) || actual.has(p)) {
        path = p;
        break;
      }
    }
    out.add(path ?? line);
  }
  return out;
}

/** One image, set up once. */
interface Image {
  kind: DebianImageKind;
  repo: string;
  boot: string;
  source: TreeManifest;
  sourceFileBytes: number;
  /** Compressed nydus data blobs (manifest layers but the bootstrap). */
  blobBytes: number;
  blobCount: number;
  /** Compressed OCI layers. */
  ociBytes: number;
  /** JSON `[path, size][]` of the regular files, for the reader's second pass. */
  fileList: string;
}

/** One rafsnap nydusd full read. */
interface ReadRun {
  round: number;
  image: DebianImageKind;
  readers: number;
  digestValidate: boolean;
  /** null when the run failed before the comparison. */
  wrong: number | null;
  diffs: string[];
  fetched: number;
  blob: number;
  seconds: number;
  paths: number;
  error?: string;
  stop: string[];
  /** First error/warning lines of the daemon's log, for failed runs. */
  logErrors?: string[];
}

/** One `ctr images pull`. */
interface PullRun {
  round: number;
  image: DebianImageKind;
  seconds: number;
  pulled: number;
  oci: number;
}

const failed = (r: ReadRun) => r.wrong === null || r.wrong > 0 || r.error !== undefined || r.stop.length > 0;

async function main(): Promise<void> {
  const opts = options();
  if (process.getuid?.() !== 0) throw new Error("run as root (FUSE and EROFS mounts, containerd, drop_caches, mmdebstrap)");
  const bin = requireBinary();
  const t00 = performance.now();
  const log = (s: string) => console.error(`[${((performance.now() - t00) / 1000).toFixed(1)} s] ${s}`);
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (sig: string) => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void cleanup
      .run()
      .catch((e) => console.error(e))
      .finally(() => process.exit(130));
  };
  process.once("SIGINT", () => onSignal("SIGINT"));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  const checkInterrupted = () => {
    if (interrupted) throw new Error("interrupted");
  };

  const reads: ReadRun[] = [];
  const pulls: PullRun[] = [];
  try {
    const dir = cleanup.tempDir("rafsnap-bench-soak-");
    const failedDir = join(dir, "failed");
    const reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const proxy = startFlakyProxy(reg.url);
    cleanup.defer("proxy", () => proxy.stop());
    const client = new RegistryClient(reg.host);

    // Setup: images pushed, converted, bootstrap fetched, source manifests computed.
    const images: Image[] = [];
    for (const kind of opts.images) {
      const img = await debianImage(kind, { log: (l) => log(`[debian-images] ${l}`) });
      const repo = `debian/${kind}`;
      const work = join(dir, `image-${kind}`);
      mkdirSync(work);
      log(`${kind}: pushing ${repo}:oci`);
      const pushed = await pushDebianImage(client, repo, "oci", img, join(work, "push"));
      for (let i = 0; i < img.layers.length; i++) rmSync(join(work, `push-${i}.tar.gz`), { force: true });
      log(`${kind}: converting ${repo}:oci → ${repo}:nydus`);
      const tc = performance.now();
      const { boot } = await convertAndFetchBootstrap(client, repo, "oci", "nydus", work);
      const convertS = (performance.now() - tc) / 1000;
      const m = JSON.parse(new TextDecoder().decode((await client.getManifest(repo, "nydus")).bytes)) as { layers: { size: number }[] };
      const data = m.layers.slice(0, -1);
      const source = await treeManifest(img.tree);
      let sourceFileBytes = 0;
      for (const r of source.values()) sourceFileBytes += r.size ?? 0;
      const fileList = join(work, "files.json");
      writeFileSync(fileList, JSON.stringify([...source].filter(([, r]) => r.type === "file").map(([p, r]) => [p, r.size])));
      const image: Image = {
        kind,
        fileList,
        repo,
        boot,
        source,
        sourceFileBytes,
        blobBytes: data.reduce((n, l) => n + l.size, 0),
        blobCount: data.length,
        ociBytes: pushed.layers.reduce((n, l) => n + l.size, 0),
      };
      images.push(image);
      log(
        `${kind}: ${source.size} paths, ${mb(sourceFileBytes)} MB in files; OCI layers ${mb(image.ociBytes)} MB; ` +
          `nydus: ${image.blobCount} data blobs, ${mb(image.blobBytes)} MB (convert ${convertS.toFixed(1)} s)`,
      );
    }

    const ctd: Containerd | undefined = opts.ctrPulls > 0 ? cleanup.add("containerd", await startContainerd({ dir: join(dir, "ctd") })) : undefined;

    // CPU load: one `sha256sum /dev/zero` per core (or --load), stopped by PID.
    const load = startCpuLoad(opts.load);
    cleanup.defer("cpu load", () => load.stop());
    const checkLoad = (when: string) => {
      const dead = load.ended();
      if (dead) throw new Error(`CPU load: ${dead} of ${load.count} sha256sum processes ended (${when})`);
    };
    const cores = availableParallelism();
    const loadText = opts.load ? `${opts.load} × \`sha256sum /dev/zero\` on ${cores} cores` : `none (${cores} cores)`;
    log(`CPU load: ${loadText}`);

    let serial = 0;
    const fullRead = async (round: number, image: Image, digestValidate: boolean, readers: number): Promise<ReadRun> => {
      const name = `r${round + 1}-${image.kind}-dv-${digestValidate ? "on" : "off"}`;
      const work = join(dir, `run-${serial++}`);
      const cache = join(work, "cache");
      mkdirSync(cache, { recursive: true });
      const r: ReadRun = {
        round,
        image: image.kind,
        readers,
        digestValidate,
        wrong: null,
        diffs: [],
        fetched: 0,
        blob: image.blobBytes,
        seconds: Number.NaN,
        paths: 0,
        stop: [],
      };
      const config = registryConfig(proxy.host, image.repo, cache, { digest_validate: digestValidate, fs_prefetch: { enable: false } });
      let proc: ChildProcess | undefined;
      checkInterrupted();
      try {
        proxy.resetCounters();
        const d = await startNydusd(work, "nydusd", config, { bootstrap: image.boot, onStart: (p) => (proc = cleanup.add(name, p)) });
        dropCaches();
        checkLoad("before the read");
        // The read runs in a child process (this same script, `--child-read`): Bun reads big
        // files' streams on the JS thread, which would stall the counting proxy in this one.
        const out = join(work, "read.json");
        const res = await run([process.execPath, import.meta.path, "--child-read", d.mnt, String(readers), out, image.fileList], {
          timeoutMs: opts.timeoutS * 1000,
        });
        r.fetched = proxy.blobBytes();
        if (res.timedOut) throw new Error(`full read not done within ${opts.timeoutS} s (reader killed)`);
        if (res.code !== 0) throw new Error(`reader exited ${res.code}: ${res.stderr.trim().split("\n").at(-1)}`);
        checkLoad("after the read");
        const child = JSON.parse(readFileSync(out, "utf8")) as ChildResult;
        if (child.ok) {
          const served: TreeManifest = new Map(child.manifest.map(([p, rec]) => [p, { ...rec, mtimeNs: BigInt(rec.mtimeNs) }]));
          r.seconds = child.seconds;
          r.paths = served.size;
          r.diffs = compareManifests(image.source, served);
          r.wrong = wrongPaths(r.diffs, image.source, served).size;
        } else {
          // The walk stopped at its first error (and Bun's stream errors name no path); the
          // child then read every regular file once more, one by one: name and count them.
          r.error = child.error;
          for (const [path, got] of child.files) {
            const want = image.source.get(path);
            if (got.startsWith("error")) r.diffs.push(`${path}: read ${got} (${want?.size} bytes)`);
            else if (got !== want?.sha256) r.diffs.push(`${path}: sha256 expected ${want?.sha256}, got ${got}`);
          }
          r.wrong = wrongPaths(r.diffs, image.source, new Map()).size;
        }
      } catch (e) {
        r.error = (e as Error).message.split("\n")[0] ?? String(e);
        r.fetched = proxy.blobBytes();
      } finally {
        if (r.error) r.logErrors = logErrors(join(work, "nydusd.log"));
        if (proc) r.stop = await stopDaemon(proc, work);
        if (failed(r)) {
          mkdirSync(failedDir, { recursive: true });
          const keep = join(failedDir, name);
          if (existsSync(join(work, "nydusd.log"))) cpSync(join(work, "nydusd.log"), `${keep}.log`);
          writeFileSync(`${keep}.txt`, `${[r.error ?? "", ...r.stop, ...r.diffs].filter(Boolean).join("\n")}\n`);
        }
        removeTree(work);
      }
      return r;
    };

    const pull = async (round: number, image: Image): Promise<PullRun> => {
      if (!ctd) throw new Error("no containerd");
      checkInterrupted();
      const ref = `${proxy.host}/${image.repo}:oci`;
      const lines = async (args: string[]) => (await ctd.ctrOk(args)).split("\n").filter((l) => l.trim() !== "");
      const [content, imgs, snaps] = [await lines(["content", "ls", "-q"]), await lines(["images", "ls", "-q"]), await ctd.snapshots("overlayfs")];
      if (content.length || imgs.length || snaps.length) {
        throw new Error(`containerd is not cold before pulling ${ref}: ${imgs.length} images, ${content.length} blobs, ${snaps.length} overlayfs snapshots`);
      }
      dropCaches();
      proxy.resetCounters();
      checkLoad("before ctr pull");
      const t0 = performance.now();
      await ctd.ctrOk(["images", "pull", "--plain-http", ref], { timeoutMs: opts.timeoutS * 1000 });
      const seconds = (performance.now() - t0) / 1000;
      const pulled = proxy.blobBytes();
      checkLoad("after ctr pull");
      await ctd.ctrOk(["images", "rm", "--sync", ref]);
      await ctd.gc();
      return { round, image: image.kind, seconds, pulled, oci: image.ociBytes };
    };

    const header =
      `soak: ${opts.rounds} rounds × ${images.map((i) => i.kind).join(", ")}; readers ${opts.readers} (odd rounds) / 1 (even rounds); ` +
      `digest_validate ${opts.digestValidate.map((v) => (v ? "on" : "off")).join(" + ")}; CPU load ${loadText}; ` +
      `registry on 127.0.0.1 behind a counting proxy; ` +
      (ctd ? `ctr images pull (containerd 1.6, overlayfs) in rounds 1–${Math.min(opts.ctrPulls, opts.rounds)}` : "no ctr images pull");
    const version = (await run([bin, "version"])).stdout.trim().replace(/\s*\n\s*/g, "; ");
    const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    console.log(`${header}\n\n${bin}: ${version}; loadavg before the rounds (with our load): ${loadavg()}\n`);
    console.log("| image | paths | files MB | OCI layers MB | nydus data blobs | blob MB |");
    console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (const i of images)
      console.log(`| ${i.kind} | ${i.source.size} | ${mb(i.sourceFileBytes)} | ${mb(i.ociBytes)} | ${i.blobCount} | ${mb(i.blobBytes)} |`);
    console.log();

    for (let round = 0; round < opts.rounds; round++) {
      const readers = round % 2 === 0 ? opts.readers : 1;
      const rows: string[] = [];
      const notes: string[] = [];
      for (const image of images) {
        const t0 = performance.now();
        for (const dv of opts.digestValidate) {
          const r = await fullRead(round, image, dv, readers);
          reads.push(r);
          const fr = r.fetched / r.blob;
          const stop = r.stop.length ? r.stop.join("; ") : "ok";
          const wrong = r.error ? `${r.wrong ?? "?"} (full read failed: ${r.error.slice(0, 60)})` : String(r.wrong);
          rows.push(
            `| ${image.kind} | rafsnap nydusd, full read | ${readers} | ${dv ? "on" : "off"} | ${wrong} | ${ratio(fr)} | ${sec(r.seconds)} | ${stop} |`,
          );
          log(
            `round ${round + 1}/${opts.rounds} ${image.kind} digest_validate ${dv ? "on" : "off"}, ${readers} readers: ${wrong} wrong, fetched ${ratio(fr)} blob, ${sec(r.seconds)} s, stop ${stop}`,
          );
          if (r.error) notes.push(`${image.kind}, digest_validate ${dv ? "on" : "off"}: ${r.error}`, ...(r.logErrors ?? []).map((l) => `  nydusd.log: ${l}`));
          if (r.diffs.length)
            notes.push(
              `${image.kind}, digest_validate ${dv ? "on" : "off"}: ${r.diffs.length} differences, first ${Math.min(10, r.diffs.length)}:`,
              ...r.diffs.slice(0, 10).map((d) => `  ${d}`),
            );
        }
        if (round < opts.ctrPulls && ctd) {
          const p = await pull(round, image);
          pulls.push(p);
          rows.push(`| ${image.kind} | ctr images pull (OCI, peer) | – | – | – | ${ratio(p.pulled / p.oci)} | ${sec(p.seconds)} | – |`);
          log(`round ${round + 1}/${opts.rounds} ${image.kind} ctr images pull: ${sec(p.seconds)} s, ${mb(p.pulled)} MB`);
        }
        log(`round ${round + 1}/${opts.rounds} ${image.kind}: ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
      }
      console.log(`round ${round + 1}/${opts.rounds} (${readers} reader${readers > 1 ? "s" : ""})\n`);
      console.log("| image | what | readers | digest_validate | wrong files | fetched / blob | full read s | stop |");
      console.log("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |");
      for (const row of rows) console.log(row);
      if (notes.length) console.log(`\n${notes.join("\n")}`);
      console.log();
    }

    // Summaries.
    const dvText = (v: boolean) => (v ? "on" : "off");
    console.log(`summary per image (${opts.rounds} rounds; full reads with every readers / digest_validate setting)\n`);
    console.log(
      "| image | rounds | full reads | wrong files (total) | failed runs | stop problems | max fetched / blob | full read median s | full read max s | ctr pull median s (n) |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const image of images) {
      const rs = reads.filter((r) => r.image === image.kind);
      const ok = rs.filter((r) => r.error === undefined);
      const ps = pulls.filter((p) => p.image === image.kind);
      console.log(
        `| ${image.kind} | ${opts.rounds} | ${rs.length} | ${rs.reduce((n, r) => n + (r.wrong ?? 0), 0)} | ${rs.filter((r) => r.error !== undefined).length} | ` +
          `${rs.filter((r) => r.stop.length).length} | ${ratio(max(rs.map((r) => r.fetched / r.blob)))} | ${sec(median(ok.map((r) => r.seconds)))} | ` +
          `${sec(max(ok.map((r) => r.seconds)))} | ${ps.length ? `${sec(median(ps.map((p) => p.seconds)))} (${ps.length})` : "–"} |`,
      );
    }
    console.log(`\nper image × readers × digest_validate (ratio: full read median over the image's ctr pull median)\n`);
    console.log("| image | readers | digest_validate | runs | wrong files | max fetched / blob | full read median s | full read max s | ratio to ctr pull |");
    console.log("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const image of images) {
      const pullMed = median(pulls.filter((p) => p.image === image.kind).map((p) => p.seconds));
      for (const readers of [...new Set([opts.readers, 1])]) {
        for (const dv of opts.digestValidate) {
          const rs = reads.filter((r) => r.image === image.kind && r.readers === readers && r.digestValidate === dv);
          if (!rs.length) continue;
          const ok = rs.filter((r) => r.error === undefined);
          const med = median(ok.map((r) => r.seconds));
          console.log(
            `| ${image.kind} | ${readers} | ${dvText(dv)} | ${rs.length} | ${rs.reduce((n, r) => n + (r.wrong ?? 0), 0)} | ${ratio(max(rs.map((r) => r.fetched / r.blob)))} | ` +
              `${sec(med)} | ${sec(max(ok.map((r) => r.seconds)))} | ${ratio(med / pullMed)} |`,
          );
        }
      }
    }
    const bad = reads.filter(failed);
    console.log(`\nloadavg after the rounds: ${loadavg()}`);
    console.log();
    if (bad.length) {
      console.log(
        `FAIL: ${bad.length} of ${reads.length} full reads had wrong files, failed or did not stop cleanly (details: ${failedDir}, kept with RAFSNAP_KEEP_TMP=1)`,
      );
      process.exitCode = 1;
    } else {
      console.log(`ok: ${reads.length} full reads, no wrong file, every daemon stopped cleanly`);
    }
    log("done");
  } finally {
    await cleanup.run();
  }
}

/** What the `--child-read` process writes: the served manifest, or after an error each file's hash. */
type ChildResult =
  | { ok: true; seconds: number; manifest: [string, Omit<PathRecord, "mtimeNs"> & { mtimeNs: string }][] }
  | { ok: false; error: string; files: [string, string][] };

/**
 * `--child-read MNT READERS OUT FILES`: times `treeManifest(MNT, { concurrency: READERS })` and
 * writes it to OUT. When the walk throws, reads every regular file listed in FILES (JSON
 * `[path, size][]`) once more, READERS at a time, and writes each one's sha256 or
 * `error: CODE message` instead.
 */
async function childRead(): Promise<void> {
  const [mnt, readersText, out, fileList] = process.argv.slice(3) as [string, string, string, string];
  const readers = Number(readersText);
  let result: ChildResult;
  try {
    const t0 = performance.now();
    const m = await treeManifest(mnt, { concurrency: readers });
    const seconds = (performance.now() - t0) / 1000;
    result = { ok: true, seconds, manifest: [...m].map(([p, rec]) => [p, { ...rec, mtimeNs: String(rec.mtimeNs) }]) };
  } catch (e) {
    const files = JSON.parse(readFileSync(fileList, "utf8")) as [string, number][];
    const hashes: [string, string][] = [];
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const [path, size] = files[next++] as [string, number];
        try {
          hashes.push([path, await sha256File(mnt + path, size)]);
        } catch (err) {
          hashes.push([path, `error: ${(err as Error).message.split("\n")[0]}`]);
        }
      }
    };
    await Promise.all(Array.from({ length: readers }, worker));
    result = { ok: false, error: (e as Error).message.split("\n")[0] ?? String(e), files: hashes.sort((a, b) => (a[0] < b[0] ? -1 : 1)) };
  }
  writeFileSync(out, JSON.stringify(result));
}

/** The first `n` lines of a daemon log that look like errors or warnings. */
function logErrors(path: string, n = 5): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => /error|warn|EIO|DataLoss|Unavailable/i.test(l))
    .slice(0, n)
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
}

/**
 * SIGTERM, then the daemon must exit 0 within 15 s, leave no mount under `work` and remove its
 * `run/nydusd-<pid>`. Returns the problems (empty when none), after killing and unmounting.
 */
async function stopDaemon(proc: ChildProcess, work: string): Promise<string[]> {
  const problems: string[] = [];
  if (proc.hasExited()) {
    problems.push(`had exited (code ${await proc.exited}) before SIGTERM`);
  } else {
    signal(proc.pid, "SIGTERM");
    const code = await Promise.race([proc.exited, Bun.sleep(15_000).then(() => null)]);
    if (code === null) {
      problems.push("still running 15 s after SIGTERM (killed)");
      await proc.stop();
    } else if (code !== 0) {
      problems.push(`exited ${code} after SIGTERM`);
    }
  }
  const left = mountsUnder(work);
  if (left.length) {
    problems.push(`mounts left: ${left.map((m) => `${m.fsType} ${m.mountPoint}`).join(", ")}`);
    unmountUnder(work);
  }
  if (existsSync(daemonRunDir(join(work, "run"), proc.pid))) problems.push(`run/nydusd-${proc.pid} left`);
  return problems;
}

if (process.argv[2] === "--child-read") await childRead();
else await main();
