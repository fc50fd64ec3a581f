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
 * socket.
 */
export function snapshotsClient(socketPath: string): SnapshotsClient {
  const transport = createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => netConnect(socketPath) },
  });
  return createClient(Snapshots, transport);
}
