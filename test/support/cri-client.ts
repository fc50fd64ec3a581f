import { connect as netConnect } from "node:net";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ImageService, RuntimeService } from "../../gen/k8s/runtime/v1/api_pb.ts";

/** A typed client of the CRI `runtime.v1.RuntimeService` (pods and containers). */
export type CriRuntimeClient = Client<typeof RuntimeService>;
/** A typed client of the CRI `runtime.v1.ImageService` (pull, list, status, remove). */
export type CriImageClient = Client<typeof ImageService>;

/** Both CRI services on one connection. */
export interface CriClients {
  runtime: CriRuntimeClient;
  image: CriImageClient;
}

/**
 * Typed gRPC clients (connect-node's gRPC transport over HTTP/2) of the Kubernetes CRI API
 * served on the unix socket `socketPath`. containerd 1.6 serves CRI on its main gRPC socket
 * (`Containerd.address` of test/harness/containerd.ts) when the CRI plugin is enabled; CRI
 * needs no `containerd-namespace` header (it always works in namespace `k8s.io`). The
 * authority in `baseUrl` is only a placeholder: every connection goes to the socket.
 */
export function criClients(socketPath: string): CriClients {
  const transport = createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => netConnect(socketPath) },
  });
  return { runtime: createClient(RuntimeService, transport), image: createClient(ImageService, transport) };
}
