// Benchmark (not a test): cold start of a container through Kubernetes CRI, containerd's
// built-in overlayfs snapshotter with an OCI image vs rafsnap (proxy snapshotter "nydus") with
// the nydus conversion of the same image, in the same run. Root only.
//
//   bun bench/cold-start.ts [--reps 5] [--size-mib 500] [--drop-caches 1] [--direct 1]
//
// The image: one layer of `--size-mib` MiB of incompressible noise in several files
// (/data/noise-NN, distinct seeds, so nothing dedups), busybox-static and /data/small.txt;
// its Entrypoint is `/bin/cat /data/small.txt`. It is pushed as `cold:oci` to a registry on
// 127.0.0.1 and converted to `cold:nydus` by `dist/rafsnap convert`. Both containerds pull
// through the counting proxy of test/harness/flaky-proxy.ts (`127.0.0.1:<proxy>/cold:…`),
// whose blob-GET byte count is the "pulled" column (manifests are not counted).
//
// containerd 1.6's CRI has one snapshotter per config, so there are two private containerds
// (each with CRI, its own dir and sandbox image): one on overlayfs, one with rafsnap as proxy
// plugin "nydus" (daemon_mode dedicated, nydusd_path = a link `nydusd` → dist/rafsnap, like
// test/support/nydus-node.ts). With `--direct 1` (default) a control variant runs too:
// overlayfs pulling `cold:oci` from the registry itself, not through the proxy (time only),
// to show what the proxy costs (it streams and counts; it used to buffer whole blobs, which
// delayed overlayfs' download by seconds). One untimed warm-up
// each, then `--reps` repetitions, rotating the order (a b d, b d a, …). One repetition:
//   - before: the image is unknown to CRI, containerd's content and snapshots are back to the
//     baseline (sandbox image only), and for rafsnap `<root>/cache` is empty — else it fails;
//     then `sync; echo 3 > drop_caches` (unless `--drop-caches 0`); then RunPodSandbox.
//   - timed: t0 just before PullImage → CreateContainer + StartContainer → t1 when the CRI log
//     file holds the first line (polled every 20 ms; the harness's waitForLog polls at 100 ms).
//   - after: wait for exit, read the proxy's byte count, remove the pod, RemoveImage and a
//     synchronous containerd GC (rafsnap's Cleanup then empties its blob cache and stops the
//     image's nydusd); nydusd pids still alive and mounts left under rafsnap's root are
//     listed after the tables.
// Prints per-repetition times (pull / create+start / first line) and bytes, then median, min
// and max of each variant and the ratio rafsnap/overlayfs next to the goals (time ≤ 0.1×
// overlayfs, bytes pulled by rafsnap ≤ 4 MB). Set RAFSNAP_KEEP_TMP=1 to keep the directory
// (logs: rafsnap/rafsnap.log, rafsnap/root/logs, ctd-*/containerd.log).
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../src/registry/index.ts";
import { Cleanup, mountsUnder } from "../test/harness/cleanup.ts";
import { type Containerd, CRI_NAMESPACE, startContainerd } from "../test/harness/containerd.ts";
import { type CriHarness, criHarness, parseCriLog } from "../test/harness/cri.ts";
import { startFlakyProxy } from "../test/harness/flaky-proxy.ts";
import { noise, pushDirImage } from "../test/harness/oci-image.ts";
import { isAlive, run, stopPid } from "../test/harness/process.ts";
import { startRegistry } from "../test/harness/registry.ts";
import { requireBinary, SYSTEM_PATH } from "../test/support/binary.ts";
import { startRafsnap } from "../test/support/rafsnap.ts";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const SMALL = "cold start: the one small file the entrypoint reads";

/** Writes dirty pages back, then drops clean caches. */
const dropCaches = () => {
  Bun.spawnSync(["sync"]);
  writeFileSync("/proc/sys/vm/drop_caches", "3");
};

/** Re-pushes `repo:tag` with an Entrypoint and PATH in its config (pushDirImage writes none). */
async function setEntrypoint(c: RegistryClient, repo: string, tag: string, entrypoint: string[]): Promise<void> {
  const dec = new TextDecoder();
  const enc = new TextEncoder();
  const manifest = JSON.parse(dec.decode((await c.getManifest(repo, tag)).bytes));
  const config = JSON.parse(dec.decode(await c.readBlob(repo, manifest.config.digest)));
  config.config = { Env: ["PATH=/bin"], Entrypoint: entrypoint, WorkingDir: "/" };
  const bytes = enc.encode(JSON.stringify(config));
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
  await c.pushBlob(repo, digest, bytes);
  manifest.config = { ...manifest.config, digest, size: bytes.length };
  await c.putManifest(repo, tag, manifest.mediaType, enc.encode(JSON.stringify(manifest)));
}

/** Polls a CRI log file every `everyMs` until it holds a complete line; returns that line. */
async function firstLine(path: string, timeoutMs: number, everyMs = 20): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const line = existsSync(path) ? parseCriLog(readFileSync(path, "utf8"))[0] : undefined;
    if (line) return line.text;
    if (performance.now() > deadline) throw new Error(`no output in ${path} within ${timeoutMs} ms`);
    await Bun.sleep(everyMs);
  }
}

/** One snapshotter under test: its containerd, CRI harness and image. */
interface Variant {
  name: string;
  ctd: Containerd;
  cri: CriHarness;
  snapshotter: string;
  ref: string;
  /** Throws unless the node is back to its baseline (called before every repetition). */
  checkCold(ref: string): Promise<void>;
}

/** One repetition's result: seconds from t0 to the end of each phase, blob bytes pulled. */
interface Sample {
  pull: number;
  started: number;
  first: number;
  bytes: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const stats = (xs: number[]) => ({ med: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (containerd, runc, FUSE/EROFS mounts)");
  const reps = arg("reps", 5);
  const sizeMib = arg("size-mib", 500);
  const drop = arg("drop-caches", 1) !== 0;
  const direct = arg("direct", 1) !== 0;
  const t00 = performance.now();
  const log = (s: string) => console.error(`[${((performance.now() - t00) / 1000).toFixed(1)} s] ${s}`);
  const cleanup = new Cleanup();
  try {
    const dir = cleanup.tempDir("rafsnap-bench-cold-");
    const reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const proxy = startFlakyProxy(reg.url);
    cleanup.defer("proxy", () => proxy.stop());

    // The image: noise files, the small file, busybox-static with the applets we need.
    const tree = join(dir, "tree");
    for (const d of ["bin", "data", "etc", "tmp", "proc", "sys", "dev"]) mkdirSync(join(tree, d), { recursive: true });
    writeFileSync(join(tree, "bin/busybox"), readFileSync(process.env.BUSYBOX ?? "/bin/busybox"), { mode: 0o755 });
    for (const a of ["sh", "cat", "ls"]) symlinkSync("busybox", join(tree, "bin", a));
    writeFileSync(join(tree, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    const files = Math.max(1, Math.ceil(sizeMib / 64));
    const each = Math.floor((sizeMib * 2 ** 20) / files);
    for (let i = 0; i < files; i++) writeFileSync(join(tree, "data", `noise-${String(i).padStart(2, "0")}`), noise(each, (0x9e3779b9 * (i + 1)) >>> 0));
    writeFileSync(join(tree, "data/small.txt"), `${SMALL}\n`);
    const client = new RegistryClient(reg.host);
    log(`pushing cold:oci (${files} × ${(each / 2 ** 20).toFixed(1)} MiB of noise)`);
    await pushDirImage(client, "cold", "oci", tree, join(dir, "layer"));
    await setEntrypoint(client, "cold", "oci", ["/bin/cat", "/data/small.txt"]);
    log("converting cold:oci → cold:nydus");
    const tc = performance.now();
    const conv = await run([requireBinary(), "convert", "--source", `${reg.host}/cold:oci`, "--target", `${reg.host}/cold:nydus`], {
      env: { PATH: SYSTEM_PATH },
      timeoutMs: 1_800_000,
    });
    if (conv.code !== 0) throw new Error(`convert: ${conv.stderr}`);
    const convS = (performance.now() - tc) / 1000;
    const blobSizes = async (tag: string) => {
      const m = JSON.parse(new TextDecoder().decode((await client.getManifest("cold", tag)).bytes)) as { layers: { size: number }[] };
      return m.layers.reduce((n, l) => n + l.size, 0);
    };
    const sizes = { oci: await blobSizes("oci"), nydus: await blobSizes("nydus") };

    // rafsnap, as test/support/nydus-node.ts starts it (info log: debug lines cost time).
    const rdir = join(dir, "rafsnap");
    mkdirSync(rdir);
    const root = join(rdir, "root");
    const cacheDir = join(root, "cache");
    symlinkSync(requireBinary(), join(rdir, "nydusd"));
    const configPath = join(rdir, "config.toml");
    writeFileSync(configPath, ["version = 1", 'daemon_mode = "dedicated"', "[daemon]", `nydusd_path = ${JSON.stringify(join(rdir, "nydusd"))}`, ""].join("\n"));
    const rafsnap = await startRafsnap(rdir, { root, args: ["--config", configPath, "--log-level", "info"] });
    const daemonPids = (): number[] => {
      if (!existsSync(join(root, "rafsnap.db"))) return [];
      const db = new Database(join(root, "rafsnap.db"), { readonly: true });
      try {
        return (db.query("SELECT pid FROM daemons").all() as { pid: number }[]).map((r) => r.pid);
      } finally {
        db.close();
      }
    };
    // Daemons are detached and outlive rafsnap: stop the recorded ones (and any seen before).
    const seenDaemons = new Set<number>();
    const leaked: number[] = [];
    const leftMounts = new Set<string>();
    cleanup.defer("nydusd daemons", async () => {
      for (const pid of new Set([...daemonPids(), ...seenDaemons])) if (pid > 0 && isAlive(pid)) await stopPid(pid);
    });
    cleanup.defer("rafsnap", () => rafsnap.stop());

    const refs = { oci: `${proxy.host}/cold:oci`, nydus: `${proxy.host}/cold:nydus` };
    const variant = async (name: string, snapshotter: string, ref: string, proxies?: Record<string, string>): Promise<Variant> => {
      const ctd = cleanup.add(
        `containerd ${name}`,
        await startContainerd({ dir: join(dir, `ctd-${snapshotter}`), proxySnapshotters: proxies, cri: { snapshotter } }),
      );
      const cri = cleanup.add(`cri ${name}`, criHarness(ctd, { dir: join(dir, `cri-${snapshotter}`), snapshotter, callTimeoutMs: 600_000 }));
      await cri.importSandboxImage();
      const o = { namespace: CRI_NAMESPACE };
      const counts = async () => ({
        content: (await ctd.ctrOk(["content", "ls", "-q"], o)).split("\n").filter(Boolean).length,
        snapshots: (await ctd.snapshots(snapshotter, o)).length,
      });
      await ctd.gc(o); // the import leaves garbage that an asynchronous GC would remove later
      const base = await counts();
      return {
        name,
        ctd,
        cri,
        snapshotter,
        ref,
        async checkCold(ref) {
          if (await cri.imageStatus(ref)) throw new Error(`${name}: ${ref} is still known to CRI`);
          const now = await counts();
          if (now.content !== base.content || now.snapshots !== base.snapshots) {
            throw new Error(`${name}: not cold: ${now.content} blobs / ${now.snapshots} snapshots in k8s.io, baseline ${base.content} / ${base.snapshots}`);
          }
          if (snapshotter !== "nydus") return;
          const left = existsSync(cacheDir) ? readdirSync(cacheDir) : [];
          if (left.length) throw new Error(`rafsnap cache ${cacheDir} is not empty after GC: ${left.join(", ")}`);
        },
      };
    };
    const a = await variant("overlayfs (OCI)", "overlayfs", refs.oci);
    const b = await variant("rafsnap (nydus)", "nydus", refs.nydus, { nydus: rafsnap.socket });
    // Control: the same overlayfs pull straight from the registry. The counting proxy buffers
    // each blob whole before it answers, which delays the first byte of the big OCI layer.
    const d: Variant | undefined = direct ? { ...a, name: "overlayfs (OCI), no proxy", ref: `${reg.host}/cold:oci` } : undefined;
    const all = d ? [a, b, d] : [a, b];

    let pods = 0;
    const once = async (v: Variant): Promise<Sample> => {
      await v.checkCold(v.ref);
      if (drop) dropCaches();
      const pod = await v.cri.runPod(`cold-${v.snapshotter}-${pods++}`);
      proxy.resetCounters();
      const t0 = performance.now();
      await v.cri.pullImage(v.ref);
      const tPull = performance.now();
      const c = await v.cri.startContainer(pod, { image: v.ref });
      const tStarted = performance.now();
      const line = await firstLine(c.logPath, 600_000);
      const t1 = performance.now();
      if (line !== SMALL) throw new Error(`${v.name}: first line ${JSON.stringify(line)}, want ${JSON.stringify(SMALL)}`);
      await v.cri.waitForExit(c.id, 60_000);
      const bytes = proxy.blobBytes();
      const daemons = v.snapshotter === "nydus" ? daemonPids() : [];
      for (const p of daemons) seenDaemons.add(p);
      await v.cri.removePod(pod);
      await v.cri.removeImage(v.ref);
      await v.ctd.gc({ namespace: CRI_NAMESPACE });
      for (const p of daemons) if (isAlive(p)) leaked.push(p);
      if (v.snapshotter === "nydus") for (const m of mountsUnder(root)) leftMounts.add(`${m.fsType} ${m.mountPoint}`);
      return { pull: (tPull - t0) / 1000, started: (tStarted - t0) / 1000, first: (t1 - t0) / 1000, bytes };
    };

    log(
      `warm-up (not recorded); OCI layer ${(sizes.oci / 1e6).toFixed(1)} MB, nydus blobs ${(sizes.nydus / 1e6).toFixed(1)} MB, convert ${convS.toFixed(1)} s`,
    );
    for (const v of all) await once(v);
    const samples = new Map<Variant, Sample[]>(all.map((v) => [v, []]));
    for (let i = 0; i < reps; i++) {
      // rotate the order each repetition (a b d, b d a, d a b, …; a b, b a without d)
      for (const v of [...all.slice(i % all.length), ...all.slice(0, i % all.length)]) {
        const s = await once(v);
        samples.get(v)?.push(s);
        log(`rep ${i + 1}/${reps} ${v.name}: first line ${s.first.toFixed(3)} s${v === d ? "" : `, pulled ${(s.bytes / 1e6).toFixed(2)} MB`}`);
      }
    }

    const of = (v: Variant) => samples.get(v) as Sample[];
    const [sa, sb] = [of(a), of(b)];
    const ta = stats(sa.map((s) => s.first));
    const tb = stats(sb.map((s) => s.first));
    const ba = stats(sa.map((s) => s.bytes));
    const bb = stats(sb.map((s) => s.bytes));
    const sec = (x: number) => x.toFixed(3);
    const mb = (x: number) => (x / 1e6).toFixed(2);
    const timeRatio = tb.med / ta.med;
    console.log(
      `cold start through CRI: PullImage → first output line; one ${sizeMib} MiB layer of noise + busybox, entrypoint \`cat /data/small.txt\`;` +
        ` containerd 1.6, registry on 127.0.0.1 behind a counting proxy; ${reps} cold repetitions each, interleaved;` +
        ` page cache ${drop ? "dropped" : "kept"} before each; OCI layer ${mb(sizes.oci)} MB, nydus blobs ${mb(sizes.nydus)} MB\n`,
    );
    console.log("| rep | variant | pull s | + create/start s | first line s | pulled MB |");
    console.log("| ---: | --- | ---: | ---: | ---: | ---: |");
    for (let i = 0; i < reps; i++) {
      for (const v of all) {
        const s = of(v)[i];
        if (s) console.log(`| ${i + 1} | ${v.name} | ${sec(s.pull)} | ${sec(s.started - s.pull)} | ${sec(s.first)} | ${v === d ? "–" : mb(s.bytes)} |`);
      }
    }
    console.log();
    console.log("| measure | overlayfs (OCI) | rafsnap (nydus) | ratio rafsnap/overlayfs | goal | met |");
    console.log("| --- | ---: | ---: | ---: | --- | --- |");
    console.log(
      `| time to first line, median s | ${sec(ta.med)} | ${sec(tb.med)} | ${timeRatio.toFixed(3)}× | ≤ 0.1× overlayfs | ${timeRatio <= 0.1 ? "yes" : "no"} |`,
    );
    console.log(`| time to first line, min / max s | ${sec(ta.min)} / ${sec(ta.max)} | ${sec(tb.min)} / ${sec(tb.max)} | – | – | – |`);
    console.log(
      `| pulled from registry, median MB | ${mb(ba.med)} | ${mb(bb.med)} | ${(bb.med / ba.med).toFixed(4)}× | rafsnap ≤ 4 MB (every rep) | ${bb.max <= 4e6 ? "yes" : "no"} |`,
    );
    console.log(`| pulled from registry, min / max MB | ${mb(ba.min)} / ${mb(ba.max)} | ${mb(bb.min)} / ${mb(bb.max)} | – | – | – |`);
    if (d) {
      const td = stats(of(d).map((s) => s.first));
      const r = tb.med / td.med;
      console.log(
        `| control: overlayfs pulling from the registry directly (no proxy), time median (min / max) s | ${sec(td.med)} (${sec(td.min)} / ${sec(td.max)}) | ${sec(tb.med)} | ${r.toFixed(3)}× | ≤ 0.1× overlayfs | ${r <= 0.1 ? "yes" : "no"} |`,
      );
    }
    if (leaked.length) console.log(`\nnydusd daemons still alive after RemoveImage + GC: ${[...new Set(leaked)].join(", ")}`);
    if (leftMounts.size) console.log(`\nmounts left under rafsnap's root after RemoveImage + GC:\n${[...leftMounts].join("\n")}`);
    log("done");
  } finally {
    await cleanup.run();
  }
}

await main();
