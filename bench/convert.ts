// Benchmark (not a test): `rafsnap convert` throughput and peak memory on a multi-layer image
// of about 500 MiB (uncompressed), next to the floor of the same work — `gzip -dc layer |
// tar -x` of the same layers — in the same run.
//
//   bun bench/convert.ts [--mib 500] [--layers 5]
//
// The image is generated here (half incompressible random data in big files, half
// compressible text in many small files, per layer), pushed to a private docker-registry on
// 127.0.0.1, and converted by the compiled binary (dist/rafsnap). Peak RSS is the process's
// VmHWM. Goal: within 1.5× of the floor (issue 13), RSS under 300 MiB. It prints what the figures
// depend on (CPU, vector extensions, WebAssembly SIMD, cores, load, versions). Root not needed.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blake3SimdModule } from "../src/rafs/blake3-simd.ts";
import { RegistryClient } from "../src/registry/index.ts";
import { Cleanup } from "../test/harness/cleanup.ts";
import { noise } from "../test/harness/oci-image.ts";
import { run, spawnProcess } from "../test/harness/process.ts";
import { startRegistry } from "../test/harness/registry.ts";
import { requireBinary } from "../test/support/binary.ts";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

/**
 * The machine and build facts a conversion's speed depends on, as table rows: the CPU and its
 * vector extensions (zstd and the hashes use them), whether WebAssembly SIMD runs (the SIMD
 * blake3 needs it; without it the scalar path is several times slower), the cores (one layer
 * thread, one decode thread and the main thread compete for them), the load before the run,
 * and the versions of Bun and of the binary converted with.
 */
function environment(loadBefore: string): string[] {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? /^CPU part\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const flags = new Set((/^(?:flags|Features)\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "").split(/\s+/));
  const vec = ["sse4_1", "sse4_2", "avx", "avx2", "avx512f", "sha_ni", "asimd"].filter((f) => flags.has(f));
  const simd = WebAssembly.validate(blake3SimdModule(1));
  const version = Bun.spawnSync([requireBinary(), "version"]).stdout.toString().trim().split("\n")[0] ?? "";
  return [
    "| fact | value |",
    "| --- | --- |",
    `| CPU | ${model} |`,
    `| vector extensions | ${vec.join(" ") || "none found"} |`,
    `| cores | ${navigator.hardwareConcurrency} |`,
    `| WebAssembly SIMD (blake3) | ${simd ? "yes" : "no: scalar blake3"} |`,
    `| load average before the conversion | ${loadBefore} |`,
    `| Bun running the benchmark | ${Bun.version} |`,
    `| rafsnap | ${version} |`,
    "| zstd | node:zlib, level 3, 1 MiB chunks |",
  ];
}

const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

/** Fills `dir` with about `bytes` of files: half random big files, half text in small files. */
function makeLayerTree(dir: string, bytes: number, seed: number): void {
  mkdirSync(dir, { recursive: true });
  const half = Math.floor(bytes / 2);
  const big = 16 << 20;
  for (let i = 0; i * big < half; i++) {
    writeFileSync(join(dir, `big-${i}.bin`), noise(Math.min(big, half - i * big), seed * 1000 + i + 1));
  }
  const line = `layer ${seed}: the quick brown fox jumps over the lazy dog 0123456789\n`;
  const small = 8 << 10;
  const text = line.repeat(Math.ceil(small / line.length)).slice(0, small);
  for (let i = 0; i * small < half; i++) {
    const sub = join(dir, `d${i % 64}`);
    if (i < 64) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f-${i}.txt`), `${i}\n${text}`);
  }
}

async function main(): Promise<void> {
  const mib = arg("mib", 500);
  const layersN = arg("layers", 5);
  const cleanup = new Cleanup();
  try {
    const dir = cleanup.tempDir("rafsnap-bench-convert-");
    const reg = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const client = new RegistryClient(reg.host);
    // 1. the image: one gzip layer per tree
    const layers: { path: string; digest: string; diffId: string; size: number; raw: number }[] = [];
    for (let i = 0; i < layersN; i++) {
      const tree = join(dir, `tree-${i}`);
      makeLayerTree(tree, Math.floor((mib << 20) / layersN), i);
      const tarPath = join(dir, `layer-${i}.tar`);
      const t = await run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", tree, "-cf", tarPath, "."], {
        timeoutMs: 300_000,
      });
      if (t.code !== 0) throw new Error(t.stderr);
      const tarBytes = Bun.file(tarPath).size;
      const gz = await run(["pigz", "-n", "-f", tarPath], { timeoutMs: 300_000 });
      if (gz.code !== 0) throw new Error(gz.stderr);
      const blob = new Uint8Array(readFileSync(`${tarPath}.gz`));
      const diff = await run(["sh", "-c", `gzip -dc ${tarPath}.gz | sha256sum`]);
      layers.push({ path: `${tarPath}.gz`, digest: sha(blob), diffId: `sha256:${diff.stdout.split(" ")[0]}`, size: blob.length, raw: tarBytes });
      await client.pushBlob("bench", sha(blob), blob);
    }
    const config = new TextEncoder().encode(
      JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } }),
    );
    await client.pushBlob("bench", sha(config), config);
    const manifest = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: l.digest, size: l.size })),
      }),
    );
    await client.putManifest("bench", "oci", "application/vnd.oci.image.manifest.v1+json", manifest);
    const rawTotal = layers.reduce((n, l) => n + l.raw, 0);

    // 2. the floor: decompress and unpack every layer — into /dev/shm (tmpfs) when there is
    // one, so that the disk's writeback of 500 MiB does not make the floor look slow.
    const shm = existsSync("/dev/shm") ? cleanup.tempDir("rafsnap-floor-", "/dev/shm") : dir;
    const f0 = performance.now();
    for (const [i, l] of layers.entries()) {
      const out = join(shm, `floor-${i}`);
      mkdirSync(out);
      const r = await run(["sh", "-c", `gzip -dc ${l.path} | tar -x -C ${out}`], { timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(r.stderr);
    }
    const floorS = (performance.now() - f0) / 1000;

    // 3. rafsnap convert, sampling its peak RSS
    const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    const c0 = performance.now();
    const proc = spawnProcess({
      cmd: [requireBinary(), "convert", "--source", `${reg.host}/bench:oci`, "--target", `${reg.host}/bench:nydus`],
      logFile: join(dir, "convert.log"),
    });
    let hwm = 0;
    const poll = setInterval(() => {
      try {
        const m = readFileSync(`/proc/${proc.pid}/status`, "utf8").match(/VmHWM:\s+(\d+) kB/);
        if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
      } catch {
        // exited
      }
    }, 50);
    const code = await proc.exited;
    clearInterval(poll);
    const convS = (performance.now() - c0) / 1000;
    if (code !== 0) throw new Error(`convert failed:\n${proc.logTail()}`);

    const m = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(`conversion of ${layersN} layers, ${m(rawTotal)} MiB uncompressed (${m(layers.reduce((n, l) => n + l.size, 0))} MiB gzip)\n`);
    console.log("| work | seconds | MiB/s (uncompressed) | peak RSS MiB |");
    console.log("| --- | ---: | ---: | ---: |");
    console.log(`| gzip -dc \\| tar -x (floor) | ${floorS.toFixed(2)} | ${(rawTotal / 2 ** 20 / floorS).toFixed(1)} | – |`);
    console.log(`| rafsnap convert (zstd, 1 MiB chunks) | ${convS.toFixed(2)} | ${(rawTotal / 2 ** 20 / convS).toFixed(1)} | ${m(hwm)} |`);
    console.log(`\nrafsnap convert takes ${(convS / floorS).toFixed(2)}× the floor (goal ≤ 1.5×); peak RSS ${m(hwm)} MiB (goal < 300).`);
    console.log(`\nWhat the figures depend on:\n\n${environment(loadBefore).join("\n")}`);
  } finally {
    await cleanup.run();
  }
}

await main();
