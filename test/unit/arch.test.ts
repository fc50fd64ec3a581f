// Guards the dependency rule of docs/design.md §3: imports point down the table.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const SRC = join(import.meta.dir, "../../src");

/** Folder → folders (and `gen`) it may import. `errdefs` and `log` are open to all but config. */
const ALLOWED: Record<string, string[]> = {
  cli: ["service", "nydusd", "convert", "setup", "config", "log", "errdefs", "snapshot", "store", "labels"],
  // Node setup and checks; `snapshot` only for the d_type probe doctor shares with serve.
  setup: ["config", "snapshot", "mount", "errdefs", "log", "labels"],
  service: [
    "auth",
    "system",
    "config",
    "grpc",
    "snapshot",
    "store",
    "nydusfs",
    "manager",
    "metrics",
    "nydusd",
    "fuse",
    "rafs",
    "convert",
    "registry",
    "cache",
    "mount",
    "sys",
    "log",
    "errdefs",
    "gen",
    "labels",
  ],
  // The system controller API: over the manager's daemons; metrics for a process's RSS.
  system: ["manager", "metrics", "store", "mount", "errdefs", "log"],
  // mount: the socket probe (stale vs live socket) shared with the daemon.
  grpc: ["snapshot", "metrics", "mount", "errdefs", "log", "gen", "labels"],
  snapshot: ["store", "sys", "errdefs", "log", "labels"],
  store: ["sys", "errdefs"],
  // The nydus remote filesystem (the snapshotter's RemoteFs port): labels, bootstrap
  // validation, instance records, shared/dedicated placement, blob cache GC, leftovers.
  nydusfs: ["manager", "nydusd", "registry", "rafs", "cache", "store", "mount", "sys", "errdefs", "log", "labels"],
  // The daemon process lifecycle only: spawn, states, liveness, recovery, supervisor, upgrade.
  manager: ["metrics", "store", "mount", "sys", "errdefs", "log"],
  nydusd: ["fuse", "rafs", "registry", "cache", "mount", "sys", "errdefs", "log", "labels"],
  // Registry credentials: keychain, kubelet credential providers, CRI ImageService proxy, renewal.
  auth: ["config", "registry", "errdefs", "log", "labels", "gen"],
  // Prometheus metrics: the registry, the collector (over ports the manager fills) and the server.
  metrics: ["sys", "errdefs", "log"],
  fuse: ["sys", "errdefs", "log"],
  rafs: ["errdefs"],
  convert: ["rafs", "registry", "sys", "errdefs", "log", "labels"],
  registry: ["errdefs", "log"],
  cache: ["errdefs", "log"],
  mount: ["sys", "errdefs", "log"],
  config: ["errdefs"],
  sys: ["errdefs"],
  errdefs: [],
  // Label and annotation keys: strings only.
  labels: [],
  log: [],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") && !p.endsWith(".test.ts") ? [p] : [];
  });
}

describe("architecture", () => {
  const all = files(SRC);
  test("every src folder is in the table", () => {
    const folders = new Set(
      all
        .map((f) => relative(SRC, f).split("/"))
        .filter((p) => p.length > 1)
        .map((p) => p[0]),
    );
    for (const f of folders) expect(Object.keys(ALLOWED)).toContain(f as string);
  });
  test("imports point down the table", () => {
    const violations: string[] = [];
    for (const f of all) {
      const parts = relative(SRC, f).split("/");
      if (parts.length < 2) continue; // src/main.ts may import cli only; checked below
      const own = parts[0] as string;
      const text = readFileSync(f, "utf8");
      // Static imports and re-exports, and dynamic import() of a relative path.
      for (const m of text.matchAll(/(?:from\s+|import\(\s*)"(\.[^"]+)"/g)) {
        const target = relative(SRC, join(f, "..", m[1] as string)).split("/")[0] as string;
        const outside = relative(join(SRC, ".."), join(f, "..", m[1] as string));
        if (outside === "package.json") continue; // version facts, embedded by the bundler
        const folder = target.startsWith("..") ? (outside.startsWith("gen/") ? "gen" : outside) : target;
        if (folder !== own && !ALLOWED[own]?.includes(folder)) violations.push(`${relative(SRC, f)} imports ${m[1]}`);
      }
    }
    expect(violations).toEqual([]);
  });
  test("worker threads are started from their own folder, from files the build embeds", () => {
    const build = readFileSync(join(SRC, "../scripts/build.ts"), "utf8");
    const found: string[] = [];
    for (const f of all) {
      const own = relative(SRC, f).split("/")[0] as string;
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/workerUrl\(import\.meta\.url,\s*"([^"]+)",\s*"([^"]+)"\)/g)) {
        found.push(`${m[1]}/${m[2]}`);
        expect(`${relative(SRC, f)}: ${m[1]}`).toBe(`${relative(SRC, f)}: ${own}`);
        expect(statSync(join(SRC, m[1] as string, m[2] as string)).isFile()).toBe(true);
        expect(build).toContain(`src/${m[1]}/${m[2]}`);
      }
      // Every worker goes through workerUrl, the one place that knows the compiled layout.
      if (!f.endsWith("sys/binary.ts")) expect(`${relative(SRC, f)}: ${text.includes("$bunfs")}`).toBe(`${relative(SRC, f)}: false`);
    }
    expect(found.length).toBeGreaterThanOrEqual(5);
  });
  test("main.ts imports only cli", () => {
    const text = readFileSync(join(SRC, "main.ts"), "utf8");
    const rel = [...text.matchAll(/from\s+"(\.[^"]+)"/g)].map((m) => m[1]);
    expect(rel.every((r) => r?.startsWith("./cli/"))).toBe(true);
  });
});
