import { expect, test } from "bun:test";
import { silentLogger } from "../log/index.ts";
import { Metrics } from "./metrics.ts";
import { parseListenAddress, serveMetrics } from "./server.ts";

test("listen addresses: host:port, :port (every interface), [v6]:port; anything else is InvalidArgument", () => {
  expect(parseListenAddress("127.0.0.1:9110")).toEqual({ hostname: "127.0.0.1", port: 9110 });
  expect(parseListenAddress(":9110")).toEqual({ hostname: "0.0.0.0", port: 9110 });
  expect(parseListenAddress("[::1]:0")).toEqual({ hostname: "::1", port: 0 });
  for (const bad of ["9110", "127.0.0.1", "host:99999", "a:b:1", ""]) expect(() => parseListenAddress(bad)).toThrow("[metrics] address");
});

test("operations are timed whether they resolve or throw; the error passes through", async () => {
  const m = new Metrics();
  expect(await m.time("PREPARE", async () => 7)).toBe(7);
  await expect(m.time("REMOVE", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
  const text = (await m.exposition()).body;
  expect(text).toContain('snapshotter_snapshot_operation_elapsed_milliseconds_count{snapshot_operation="PREPARE"} 1');
  expect(text).toContain('snapshotter_snapshot_operation_elapsed_milliseconds_count{snapshot_operation="REMOVE"} 1');
});

test("daemon-reported histograms are cumulative, end in +Inf, and skip counters of the wrong length", async () => {
  const m = new Metrics();
  m.readLatency.replace(
    new Map([
      ["img", [1, 2, 0, 0, 0, 0, 0, 3]],
      ["short", [1]],
    ]),
  );
  const text = (await m.exposition()).body;
  expect(text).toContain('nydusd_read_latency_microseconds_bucket{le="20",image_ref="img"} 3');
  expect(text).toContain('nydusd_read_latency_microseconds_bucket{le="+Inf",image_ref="img"} 6');
  expect(text).toContain('nydusd_read_latency_microseconds_sum{image_ref="img"} 12041'); // 1·1 + 2·20 + 3·4000
  expect(text).not.toContain('image_ref="short"');
});

test("the cache GC counters are read at scrape time from their owner", async () => {
  const m = new Metrics();
  const gc = { inUse: 2, deleted: 5, deletionErrors: 1 };
  m.observeCacheGc(() => gc);
  gc.deleted = 6;
  const text = (await m.exposition()).body;
  expect(text).toContain("snapshotter_cache_blobs_deleted_total 6");
  expect(text).toContain("snapshotter_cache_blob_deletion_errors_total 1");
  expect(text).toContain("snapshotter_cache_blobs_in_use 2");
});

test("the server answers /v1/metrics only, and refuses an address in use with FailedPrecondition", async () => {
  const m = new Metrics();
  const log = silentLogger();
  const s = serveMetrics("127.0.0.1:0", m, log);
  try {
    const ok = await fetch(`http://127.0.0.1:${s.port}/v1/metrics`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("# TYPE nydusd_counts gauge");
    expect((await fetch(`http://127.0.0.1:${s.port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${s.port}/v1/metrics`, { method: "POST" })).status).toBe(405);
    expect(() => serveMetrics(`127.0.0.1:${s.port}`, m, log)).toThrow("cannot listen");
  } finally {
    await s.stop();
  }
});
