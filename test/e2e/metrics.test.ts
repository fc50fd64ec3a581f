// Prometheus metrics of the compiled `rafsnap serve` with `[metrics] address` on 127.0.0.1:
// real snapshot calls (a nydus image unpacked as containerd's CRI unpacker does, a View that
// starts a dedicated rafsnap nydusd, a file read through it, removal and Cleanup) move the
// counters under nydus-snapshotter's names; `promtool check metrics` (Debian's prometheus
// package) finds the exposition clean; a real Prometheus server scrapes it. Root only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cleanup } from "../harness/cleanup.ts";
import { HELLO } from "../harness/images.ts";
import { freePort, spawnProcess, waitFor } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { type NydusTestImage, prepareNydusImage, serveNydus, viewNydusImage } from "../support/nydus-unpack.ts";
import type { RafsnapServer } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;
const promtool = Bun.which("promtool");
const prometheus = Bun.which("prometheus");

/** Sum of the samples of `name` whose labels include all of `labels`; undefined when none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum = (sum ?? 0) + Number(m[4]);
  }
  return sum;
}

/**
 * promtool's naming-convention findings on names rafsnap must keep for nydus-snapshotter's
 * dashboards (units in KiB and ms, `_counts`/`_count` suffixes): expected, and nothing else.
 */
const INHERITED_NAME_LINTS = new Set([
  'nydusd_cache_entries_count non-histogram and non-summary metrics should not have "_count" suffix',
  'nydusd_cache_prefetch_requests_count non-histogram and non-summary metrics should not have "_count" suffix',
  'nydusd_lifetime_event_counts counter metrics should have "_total" suffix',
  'nydusd_rss_kilobytes use base unit "bytes" instead of "kilobytes"',
  'snapshotter_cache_usage_kilobytes use base unit "bytes" instead of "kilobytes"',
  'snapshotter_memory_usage_kilobytes use base unit "bytes" instead of "kilobytes"',
  'snapshotter_snapshot_operation_elapsed_milliseconds use base unit "seconds" instead of "milliseconds"',
]);

/**
 * Runs `promtool check metrics` on `text`: its exit code (0 clean, 3 lint findings only; 1 is
 * a parse error) and the findings other than {@link INHERITED_NAME_LINTS}.
 */
async function promtoolCheck(text: string): Promise<{ code: number; findings: string[] }> {
  const p = Bun.spawn([promtool as string, "check", "metrics"], { stdin: new Blob([text]), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const findings = (out + err)
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !INHERITED_NAME_LINTS.has(l));
  return { code: code === 3 ? 0 : code, findings };
}

describe.skipIf(!isRoot || !promtool)("Prometheus metrics on [metrics] address", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let img: NydusTestImage;
  let port = 0;
  let s: RafsnapServer;
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    return res.text();
  };

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-metrics-");
    const reg: Registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    img = await prepareNydusImage(dir, reg);
    port = await freePort();
    s = await serveNydus(
      cleanup,
      dir,
      "serve",
      `daemon_mode = "dedicated"\n[metrics]\naddress = "127.0.0.1:${port}"\ncollect_interval = "1s"\nhung_io_interval = "1s"`,
    );
  }, 180_000);
  afterAll(() => cleanup.run());

  test("the exposition is clean before any call, with no warning that metrics are not built", async () => {
    const text = await scrape();
    expect(await promtoolCheck(text)).toEqual({ code: 0, findings: [] });
    expect(text).toContain("# TYPE snapshotter_snapshot_operation_elapsed_milliseconds histogram");
    expect(text).toContain("# TYPE nydusd_lifetime_event_counts counter");
    expect(sample(text, "snapshotter_snapshot_operation_elapsed_milliseconds_count")).toBeUndefined();
    expect(sample(text, "nydusd_counts")).toBeUndefined();
    expect(sample(text, "snapshotter_memory_usage_kilobytes")).toBeGreaterThan(1000);
    expect(readFileSync(join(dir, "serve", "rafsnap.log"), "utf8")).not.toContain("Prometheus metrics server is not built");
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
  });

  test("snapshot calls, a daemon and a read move the metrics; removal and Cleanup move them back", async () => {
    const { image, layers } = img;
    const { lower } = await viewNydusImage(s.client, img, "a");
    await s.client.mounts({ key: "a-view" });
    expect(readFileSync(join(lower, "data/hello"), "utf8").trim()).toBe(HELLO);

    // The collector runs every second: wait until it has seen the read.
    let text = "";
    await waitFor(
      "read metrics of the image",
      async () => {
        text = await scrape();
        return (sample(text, "nydusd_read_hits", { image_ref: image }) ?? 0) > 0 && (sample(text, "snapshotter_cache_usage_kilobytes") ?? 0) > 0;
      },
      30_000,
    );
    expect(await promtoolCheck(text)).toEqual({ code: 0, findings: [] });
    const op = (o: string, t = text) => sample(t, "snapshotter_snapshot_operation_elapsed_milliseconds_count", { snapshot_operation: o }) ?? 0;
    // One Prepare per layer (data layers answer AlreadyExists, timed all the same), one Mounts.
    expect(op("PREPARE")).toBe(layers.length);
    expect(op("MOUNTS")).toBe(1);
    expect(sample(text, "snapshotter_snapshot_operation_elapsed_milliseconds_bucket", { snapshot_operation: "PREPARE", le: "+Inf" })).toBe(layers.length);
    expect(sample(text, "nydusd_counts")).toBe(1);
    expect(sample(text, "nydusd_lifetime_event_counts", { nydusd_event: "RUNNING" })).toBe(1);
    const { Database } = await import("bun:sqlite");
    const db = new Database(join(s.root, "rafsnap.db"), { readonly: true });
    const daemon = db.query("SELECT id, pid FROM daemons").get() as { id: string; pid: number };
    db.close();
    const rss = sample(text, "nydusd_rss_kilobytes", { daemon_id: daemon.id }) as number;
    const vmRss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${daemon.pid}/status`, "utf8"))?.[1]);
    expect(rss).toBeGreaterThan(vmRss / 4); // same process, moments apart
    expect(rss).toBeLessThan(vmRss * 4);
    expect(sample(text, "nydusd_image_info", { daemon_id: daemon.id, image_ref: image })).toBe(1);
    expect(sample(text, "nydusd_total_read_bytes", { image_ref: image })).toBeGreaterThan(0);
    expect(sample(text, "nydusd_read_errors", { image_ref: image })).toBe(0);
    expect(sample(text, "nydusd_cache_total_requests", { image_ref: image })).toBeGreaterThan(0);
    expect(sample(text, "nydusd_cache_entries_count", { image_ref: image })).toBeGreaterThan(0);
    expect(sample(text, "nydusd_hung_io_counts")).toBe(0);

    await s.client.remove({ key: "a-view" });
    for (let i = layers.length - 1; i >= 0; i--) await s.client.remove({ key: `a-chain-${i}` });
    await s.client.cleanup({});
    await waitFor(
      "the image to drop out",
      async () => {
        text = await scrape();
        return sample(text, "nydusd_read_hits", { image_ref: image }) === undefined;
      },
      30_000,
    );
    expect(await promtoolCheck(text)).toEqual({ code: 0, findings: [] });
    expect(op("REMOVE")).toBe(layers.length + 1);
    expect(op("CLEANUP")).toBe(1);
    expect(sample(text, "nydusd_counts")).toBe(0);
    expect(sample(text, "nydusd_lifetime_event_counts", { nydusd_event: "DESTROYED" })).toBe(1);
    expect(sample(text, "nydusd_rss_kilobytes")).toBeUndefined();
    // The GC of Cleanup removed the image's blobs from the cache.
    expect(sample(text, "snapshotter_cache_blobs_deleted_total")).toBeGreaterThan(0);
    expect(sample(text, "snapshotter_cache_blob_deletion_errors_total")).toBe(0);
    expect(sample(text, "snapshotter_cache_blobs_in_use")).toBe(0);
  }, 180_000);

  test.skipIf(!prometheus)(
    "a Prometheus server scrapes the endpoint",
    async () => {
      const pdir = join(dir, "prometheus");
      const webPort = await freePort();
      const cfg = join(dir, "prometheus.yml");
      writeFileSync(
        cfg,
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rafsnap\n    metrics_path: /v1/metrics\n    static_configs:\n      - targets: ["127.0.0.1:${port}"]\n`,
      );
      const p = cleanup.add(
        "prometheus",
        spawnProcess({
          cmd: [prometheus as string, `--config.file=${cfg}`, `--storage.tsdb.path=${pdir}`, `--web.listen-address=127.0.0.1:${webPort}`],
          logFile: join(dir, "prometheus.log"),
        }),
      );
      const query = async (q: string) => {
        const r = await fetch(`http://127.0.0.1:${webPort}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => undefined);
        if (!r?.ok) return undefined;
        const j = (await r.json()) as { data: { result: { value: [number, string] }[] } };
        return j.data.result[0]?.value[1];
      };
      await waitFor(
        "Prometheus to scrape rafsnap",
        async () => (await query('up{job="rafsnap"}')) === "1",
        60_000,
        () => !p.hasExited(),
      );
      await waitFor(
        "the operation counts in Prometheus",
        async () => (await query('sum(snapshotter_snapshot_operation_elapsed_milliseconds_count{snapshot_operation="CLEANUP"})')) === "1",
        30_000,
        () => !p.hasExited(),
      );
      expect(await query("scrape_samples_scraped")).not.toBe("0");
    },
    120_000,
  );
});
