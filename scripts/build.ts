// Builds the single executable: `bun run build [-- --target=bun-linux-arm64]`.
// Output: dist/rafsnap (host) or dist/rafsnap-<arch> for a cross target. The migrations,
// the default config and worker modules are embedded by the bundler (text/json imports).
import { mkdirSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const targetArg = process.argv.find((a) => a.startsWith("--target="));
const target = targetArg?.slice("--target=".length);
const arch = target?.match(/linux-(x64|arm64)/)?.[1];
const outfile = `${root}dist/${arch ? `rafsnap-${arch}` : "rafsnap"}`;

function git(args: string[]): string {
  const r = Bun.spawnSync(["git", ...args], { cwd: root, stderr: "ignore" });
  return r.exitCode === 0 ? r.stdout.toString().trim() : "";
}

const revision = git(["rev-parse", "--short=12", "HEAD"]) || "unknown";
const epoch = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) * 1000 : Date.now();
const buildTime = new Date(epoch).toISOString();

mkdirSync(`${root}dist`, { recursive: true });
const cmd = [
  process.execPath,
  "build",
  "--compile",
  "--minify-syntax",
  // Each lazily imported command (and what only it needs) becomes a chunk of its own, loaded
  // when that command runs: `rafsnap nydusd` no longer parses the snapshotter's gRPC,
  // drizzle and protobuf code, ~5 MiB less RSS per daemon (docs/nydusd.md, "Memory").
  "--splitting",
  "--sourcemap=inline",
  `--define=RAFSNAP_REVISION=${JSON.stringify(revision)}`,
  `--define=RAFSNAP_BUILD_TIME=${JSON.stringify(buildTime)}`,
  ...(target ? [`--target=${target}`] : []),
  `${root}src/main.ts`,
  // Worker modules must be entrypoints of their own to be embedded (docs/design.md §2).
  `${root}src/fuse/reader-worker.ts`,
  `${root}src/mount/mount-worker.ts`,
  `${root}src/mount/fdpass-worker.ts`,
  `${root}src/convert/layer-worker.ts`,
  `${root}src/nydusd/decode-worker.ts`,
  "--outfile",
  outfile,
];
const r = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
if (r.exitCode !== 0) {
  console.error(`build failed: ${cmd.join(" ")}`);
  process.exit(r.exitCode ?? 1);
}
console.log(`built ${outfile} (${revision}, ${buildTime})`);
