import { expect, test } from "bun:test";
import { ErrorKind } from "../errdefs/index.ts";
import { type DaemonConfig, parseDaemonConfig } from "./config.ts";

const parse = (backendConfig: object, extra: object = {}): DaemonConfig =>
  parseDaemonConfig(
    JSON.stringify({
      device: {
        backend: { type: "registry", config: { host: "registry.example", repo: "app", ...backendConfig } },
        cache: { type: "blobcache", config: { work_dir: "/var/cache/x" } },
      },
      ...extra,
    }),
    "test.json",
  );
const registry = (c: DaemonConfig) => {
  if (c.backend.type !== "registry") throw new Error("not a registry backend");
  return c.backend;
};

test("mirrors and proxy: ping_url, headers, intervals (0 or absent is 5 s)", () => {
  const b = registry(
    parse({
      mirrors: [
        {
          host: "http://m1:5000",
          ping_url: "http://m1:5000/healthz",
          health_check_interval: 2,
          failure_limit: 3,
          headers: { "X-Dragonfly-Registry": "https://registry.example" },
          auth_through: true,
        },
        { host: "m2", health_check_interval: 0 },
      ],
      proxy: { url: "http://p:65001", ping_url: "http://p:40901/server/ping", check_interval: 7, fallback: false, use_http: true },
    }),
  );
  expect(b.mirrors).toEqual([
    {
      host: "http://m1:5000",
      failureLimit: 3,
      healthCheckIntervalSeconds: 2,
      pingUrl: "http://m1:5000/healthz",
      headers: { "x-dragonfly-registry": "https://registry.example" },
      authThrough: true,
    },
    { host: "m2", failureLimit: 5, healthCheckIntervalSeconds: 5, pingUrl: "", headers: {}, authThrough: false },
  ]);
  expect(b.proxy).toEqual({ url: "http://p:65001", fallback: false, checkIntervalSeconds: 7, pingUrl: "http://p:40901/server/ping" });
});

test("bad ping_url, headers and intervals are InvalidArgument naming the key, never quoting secrets", () => {
  const bad = (cfg: object, msg: string) => {
    let err: unknown;
    try {
      parse(cfg);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ kind: ErrorKind.InvalidArgument });
    expect(String(err)).toContain(msg);
    expect(String(err)).not.toContain("s3cret");
  };
  bad({ mirrors: [{ host: "m", ping_url: "ftp://user:s3cret@m/ping" }] }, "mirrors[0].ping_url must be an http(s) URL");
  bad({ mirrors: [{ host: "m", ping_url: "not a url s3cret" }] }, "mirrors[0].ping_url");
  bad({ mirrors: [{ host: "m", headers: ["x"] }] }, "mirrors[0].headers must be an object of strings");
  bad({ mirrors: [{ host: "m", headers: { a: 1 } }] }, "mirrors[0].headers must be an object of strings");
  bad({ mirrors: [{ host: "m", headers: { "bad header": "s3cret" } }] }, 'headers["bad header"] is not a valid HTTP header');
  bad({ mirrors: [{ host: "m", health_check_interval: -1 }] }, "mirrors[0].health_check_interval must be a non-negative number");
  bad({ proxy: { url: "http://p", check_interval: -5 } }, "proxy.check_interval");
  bad({ proxy: { url: "http://p", ping_url: 5 } }, "proxy.ping_url must be a string");
});

test("fs_prefetch: bandwidth_rate (0 = unlimited) and merging_size (default 128 KiB)", () => {
  expect(parse({}).prefetch).toEqual({ enable: false, prefetchAll: false, threadsCount: 4, mergingSize: 128 << 10, bandwidthRate: 0 });
  const p = parse({}, { fs_prefetch: { enable: true, prefetch_all: true, threads_count: 8, merging_size: 1 << 20, bandwidth_rate: 10_000_000 } }).prefetch;
  expect(p).toEqual({ enable: true, prefetchAll: true, threadsCount: 8, mergingSize: 1 << 20, bandwidthRate: 10_000_000 });
  expect(() => parse({}, { fs_prefetch: { bandwidth_rate: -1 } })).toThrow("fs_prefetch.bandwidth_rate must be a non-negative number");
  expect(() => parse({}, { fs_prefetch: { merging_size: "1M" } })).toThrow("fs_prefetch.merging_size must be a number");
});
