// Benchmark (not a test): reading through `rafsnap nydusd` (blobfs + kernel EROFS) from a
// registry on 127.0.0.1, next to the obvious references, in the same run. Root only.
//
//   bun bench/lazy-read.ts [--mib 256] [--instances 20] [--repeat 3]
//
// - cold: sequential read of a MiB-sized noise file with an empty cache (default config:
//   digest_validate off; and again with it on) vs a plain HTTP client copying the same blob
//   from the registry, page cache dropped before each, `--repeat` times, medians;
// - warm: the same read again (blob cache on disk, page cache dropped) vs the same file on
//   local disk (page cache dropped), `--repeat` rounds, which goes first alternating; medians
//   reported (single runs on a small VM vary by ±30 %), the ratio as the median of each
//   round's;
// - first byte: one cold 4 KiB read in the middle of the file, fresh cache;
// - RSS of one shared daemon serving the image `--instances` times.
// Goals (issue 5): cold ≥ 0.5× the plain copy, warm ≥ 0.9× local disk, RSS ≤ 80 MiB.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../src/registry/index.ts";
import { Cleanup } from "../test/harness/cleanup.ts";
import { noise, pushDirImage } from "../test/harness/oci-image.ts";
import { run } from "../test/harness/process.ts";
import { startRegistry } from "../test/harness/registry.ts";
import { requireBinary } from "../test/support/binary.ts";
import { registryConfig, startNydusd } from "../test/support/nydusd.ts";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

/** Writes dirty pages back, then drops clean caches (dirty pages cannot be dropped). */
const dropCaches = () => {
  Bun.spawnSync(["sync"]);
  writeFileSync("/proc/sys/vm/drop_caches", "3");
};

async function timed(cmd: string[]): Promise<number> {
  const t0 = performance.now();
  const r = await run(cmd, { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (FUSE and EROFS mounts)");
  const mib = arg("mib", 256);
  const instances = arg("instances", 20);
  const repeat = Math.max(1, arg("repeat", 3));
  const cleanup = new Cleanup();
  try {
    const dir = cleanup.tempDir("rafsnap-bench-lazy-");
    const reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const tree = join(dir, "tree");
    mkdirSync(tree);
    writeFileSync(join(tree, "big"), noise(mib << 20));
    writeFileSync(join(dir, "local-copy"), readFileSync(join(tree, "big")));
    const c = new RegistryClient(reg.host);
    await pushDirImage(c, "lazy", "oci", tree, join(dir, "layer"));
    const conv = await run([requireBinary(), "convert", "--source", `${reg.host}/lazy:oci`, "--target", `${reg.host}/lazy:nydus`], { timeoutMs: 600_000 });
    if (conv.code !== 0) throw new Error(conv.stderr);
    const layers = (JSON.parse(new TextDecoder().decode((await c.getManifest("lazy", "nydus")).bytes)) as { layers: { digest: string }[] }).layers;
    writeFileSync(join(dir, "boot.tgz"), await c.readBlob("lazy", layers.at(-1)?.digest as string));
    await run(["tar", "-xzf", join(dir, "boot.tgz"), "-C", dir]);
    const boot = join(dir, "image/image.boot");

    let n = 0;
    const daemon = async (cache: string, shared = false, extra: object = {}) => {
      const name = `d${n++}`;
      const config = registryConfig(reg.host, "lazy", join(dir, cache), extra);
      const d = await startNydusd(dir, name, config, { bootstrap: shared ? undefined : boot, onStart: (p) => cleanup.add(name, p) });
      return { d: d.proc, mnt: d.mnt, sock: d.sock, config };
    };
    const dd = (file: string) => timed(["dd", `if=${file}`, "of=/dev/null", "bs=1M", "status=none"]);

    // Cold: the plain HTTP copy of the data blob, then the same bytes through a daemon with
    // an empty cache — with the default config (digest_validate off, as nydus's template and
    // ours ship), and with digest_validate on — page cache dropped before each, `--repeat`
    // times, alternating.
    const plain: number[] = [];
    const cold: number[] = [];
    const coldDv: number[] = [];
    let copied = 0;
    for (let i = 0; i < repeat; i++) {
      dropCaches();
      const p0 = performance.now();
      copied = 0;
      for await (const chunk of c.blobStream("lazy", layers[0]?.digest as string)) copied += chunk.length;
      plain.push((performance.now() - p0) / 1000);
      for (const [dv, list] of [
        [false, cold],
        [true, coldDv],
      ] as const) {
        const d = await daemon(`cold-${i}-${dv}`, false, { digest_validate: dv });
        dropCaches();
        list.push(await dd(join(d.mnt, "big")));
        await d.d.stop();
      }
    }

    // Warm: the same read again from a filled cache (page cache dropped) vs the same file on
    // local disk (page cache dropped), `--repeat` times each, alternating.
    const a = await daemon("cache-a");
    await dd(join(a.mnt, "big"));
    const warm: number[] = [];
    const local: number[] = [];
    // Which of the two runs first alternates: the first read after dropping caches measured
    // slower whichever file it was.
    for (let i = 0; i < repeat; i++) {
      const readWarm = async () => {
        dropCaches();
        warm.push(await dd(join(a.mnt, "big")));
      };
      const readLocal = async () => {
        dropCaches();
        local.push(await dd(join(dir, "local-copy")));
      };
      if (i % 2 === 0) {
        await readWarm();
        await readLocal();
      } else {
        await readLocal();
        await readWarm();
      }
    }
    const median = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1] as number;
    const warmS = median(warm);
    const localS = median(local);
    const plainS = median(plain);
    const coldS = median(cold);
    const coldDvS = median(coldDv);
    await a.d.stop();

    // first byte: one cold 4 KiB read
    const b = await daemon("cache-b");
    dropCaches();
    const firstS = await timed(["dd", `if=${join(b.mnt, "big")}`, "of=/dev/null", "bs=4k", "count=1", `skip=${(mib << 8) / 2}`, "status=none"]);
    await b.d.stop();

    // RSS: one shared daemon with the image mounted `instances` times
    const s = await daemon("cache-c", true);
    const cfg = JSON.stringify(s.config);
    for (let i = 0; i < instances; i++) {
      const r = await fetch(`http://localhost/api/v1/mount?mountpoint=/i${i}`, {
        method: "POST",
        unix: s.sock,
        body: JSON.stringify({ fs_type: "rafs", source: boot, config: cfg }),
      } as RequestInit);
      if (r.status !== 204) throw new Error(`mount ${i}: ${r.status} ${await r.text()}`);
    }
    await run(["sh", "-c", `for i in $(seq 0 ${instances - 1}); do head -c 65536 ${s.mnt}/i$i/big >/dev/null; done`]);
    const rss = Number(readFileSync(`/proc/${s.d.pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)?.[1] ?? 0) * 1024;
    await s.d.stop();

    const mbps = (bytes: number, secs: number) => (bytes / 2 ** 20 / secs).toFixed(1);
    const size = mib << 20;
    console.log(`lazy reads of a ${mib} MiB file (incompressible) through rafsnap nydusd, registry on 127.0.0.1\n`);
    console.log("| measure | rafsnap | reference | ratio | goal |");
    console.log("| --- | ---: | ---: | ---: | --- |");
    const runs = repeat > 1 ? `, median of ${repeat}` : "";
    console.log(
      `| cold sequential read, MiB/s | ${mbps(size, coldS)} | ${mbps(copied, plainS)} (plain HTTP copy of the blob${runs}) | ${(plainS / coldS).toFixed(2)}× | ≥ 0.5× |`,
    );
    console.log(`| cold, digest_validate on, MiB/s | ${mbps(size, coldDvS)} | ${mbps(copied, plainS)} | ${(plainS / coldDvS).toFixed(2)}× | – |`);
    // The disk's speed drifts between runs: the ratio is the median of each warm read against
    // the local read of the same round, not the ratio of the two medians.
    const pairs = median(warm.map((w, i) => (local[i] as number) / w));
    console.log(
      `| warm sequential read, MiB/s | ${mbps(size, warmS)} | ${mbps(size, localS)} (same file on local disk${runs}) | ${pairs.toFixed(2)}× | ≥ 0.9× |`,
    );
    console.log(`| cold 4 KiB read, first byte | ${(firstS * 1000).toFixed(1)} ms | – | – | – |`);
    console.log(`| daemon RSS, ${instances} instances | ${(rss / 2 ** 20).toFixed(1)} MiB | – | – | ≤ 80 MiB |`);
  } finally {
    await cleanup.run();
  }
}

await main();
