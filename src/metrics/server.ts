import { failedPrecondition, invalidArgument } from "../errdefs/index.ts";
import type { Logger } from "../log/index.ts";
import type { Metrics } from "./metrics.ts";

/** Path of the exposition, as nydus-snapshotter serves it. */
export const METRICS_PATH = "/v1/metrics";

/** A running metrics HTTP server. */
export interface MetricsServer {
  /** The host and port it listens on (the port resolved when the address asked for 0). */
  readonly hostname: string;
  readonly port: number;
  /** Stops listening and closes open connections. */
  stop(): Promise<void>;
}

/**
 * Splits a `[metrics] address` (`host:port`, `:port` for every interface, `[v6]:port`) into
 * the host and port to bind. InvalidArgument for anything else (a missing or out-of-range port).
 */
export function parseListenAddress(address: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw invalidArgument(`[metrics] address ${JSON.stringify(address)}: expected host:port or :port`);
  const host = m[1] ?? m[2] ?? "";
  return { hostname: host === "" ? "0.0.0.0" : host, port };
}

/**
 * Serves `metrics` in the Prometheus text format at `GET /v1/metrics` on the TCP `address`
 * (see {@link parseListenAddress}); any other path is 404, any other method 405. A failed
 * scrape answers 500 and is logged. Throws InvalidArgument for a malformed address and
 * FailedPrecondition when the address cannot be bound (in use, not local).
 */
export function serveMetrics(address: string, metrics: Metrics, logger: Logger): MetricsServer {
  const { hostname, port } = parseListenAddress(address);
  const log = logger.withTag("metrics");
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname,
      port,
      async fetch(req) {
        const url = new URL(req.url);
        if (url.pathname !== METRICS_PATH) return new Response("not found\n", { status: 404 });
        if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
        try {
          const { body, contentType } = await metrics.exposition();
          return new Response(body, { headers: { "content-type": contentType } });
        } catch (e) {
          log.error(`metrics scrape failed: ${(e as Error).message}`);
          return new Response("scrape failed\n", { status: 500 });
        }
      },
    });
  } catch (e) {
    throw failedPrecondition(`[metrics] address ${address}: cannot listen: ${(e as Error).message}`, e);
  }
  log.info(`serving Prometheus metrics on http://${hostname}:${server.port}${METRICS_PATH}`);
  return {
    hostname,
    port: server.port ?? port,
    stop: async () => {
      await server.stop(true);
    },
  };
}
