import { connect as netConnect } from "node:net";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Snapshots } from "../../gen/containerd/services/snapshots/v1/snapshots_pb.ts";

/** A typed client of containerd's snapshots API. */
export type SnapshotsClient = Client<typeof Snapshots>;

/**
 * A typed gRPC client (connect-node's gRPC transport over HTTP/2) of the snapshots API
 * served on the unix socket `socketPath` — the same wire protocol containerd's proxy client
 * speaks. The authority in `baseUrl` is only a placeholder: every connection goes to the
 * socket. With `namespace` it talks to containerd's own snapshots service (which needs the
 * `containerd-namespace` header and proxies to the snapshotter named in each request).
 */
export function snapshotsClient(socketPath: string, opts: { namespace?: string } = {}): SnapshotsClient {
  const ns = opts.namespace;
  const transport = createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => netConnect(socketPath) },
    interceptors: ns
      ? [
          (next) => (req) => {
            req.header.set("containerd-namespace", ns);
            return next(req);
          },
        ]
      : [],
  });
  return createClient(Snapshots, transport);
}
