// `[remote.auth] enable_cri_keychain`: rafsnap serves the CRI `runtime.v1.ImageService` on
// its own socket (the kubelet's `--image-service-endpoint`), forwards every call unchanged
// to containerd's CRI, and keeps the credentials of each PullImage for the image's daemons.
import { fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { PullImageRequestSchema } from "../../gen/k8s/runtime/v1/api_pb.ts";
import type { Logger } from "../log/index.ts";
import { type CriAuthStore, credentialsOfAuthConfig } from "./cri-auth.ts";

/** The CRI image service's gRPC name. */
export const CRI_IMAGE_SERVICE = "runtime.v1.ImageService";
/** Its methods, all unary (CRI v1). */
const METHODS = ["ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"] as const;

/** containerd's socket, where its CRI plugin serves by default. */
export const CONTAINERD_SOCKET = "/run/containerd/containerd.sock";

/** The socket path of `[remote.auth] image_service_address` (`unix://` allowed; "" means containerd's). */
export function imageServiceSocket(address: string): string {
  if (address === "") return CONTAINERD_SOCKET;
  return address.startsWith("unix://") ? address.slice("unix://".length) : address;
}

const bytes = (b: Buffer) => b;

/** A running proxy: its registration for the gRPC server, and `close` for its upstream channel. */
export interface CriProxy {
  definition: grpc.ServiceDefinition;
  handlers: grpc.UntypedServiceImplementation;
  close(): void;
}

/**
 * The ImageService proxy: each call's request bytes, metadata and deadline go to
 * `upstreamSocket` (containerd's CRI) as they are, and its answer or status comes back
 * unchanged — fields rafsnap's protobuf subset does not know survive, and ImageFsInfo is
 * forwarded too. A PullImage's `auth` (when it holds credentials) is kept in `store` under
 * the image reference before the call is forwarded (containerd may mount the image while it
 * pulls); it is never logged (the debug log names the method and image only). A call containerd does not answer
 * fails with containerd's status (UNAVAILABLE when its socket is down).
 */
export function criImageProxy(upstreamSocket: string, store: CriAuthStore, logger: Logger): CriProxy {
  const log = logger.withTag("cri");
  const client = new grpc.Client(`unix:${upstreamSocket}`, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 16 << 20,
    "grpc.max_send_message_length": 16 << 20,
    "grpc.enable_channelz": 0,
  });
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const name of METHODS) {
    const path = `/${CRI_IMAGE_SERVICE}/${name}`;
    definition[name] = {
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: bytes,
      requestDeserialize: bytes,
      responseSerialize: bytes,
      responseDeserialize: bytes,
    };
    handlers[name] = ((call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      if (name === "PullImage") {
        try {
          const req = fromBinary(PullImageRequestSchema, call.request);
          const image = req.image?.image ?? "";
          const creds = credentialsOfAuthConfig(req.auth);
          if (creds && image !== "") store.set(image, creds);
          log.debug(`PullImage ${JSON.stringify(image)}${creds ? " with credentials" : ""}`);
        } catch (e) {
          log.warn(`PullImage: the request does not decode (${(e as Error).message}); forwarded as it is`);
        }
      } else log.debug(name);
      const deadline = call.getDeadline();
      const upstream = client.makeUnaryRequest(path, bytes, bytes, call.request, call.metadata, { deadline }, (err, res) => {
        if (err) {
          if (err.code === grpc.status.UNAVAILABLE) log.warn(`${name}: containerd's CRI at ${upstreamSocket} is unavailable: ${err.details}`);
          cb(err);
          return;
        }
        cb(null, res);
      });
      call.on("cancelled", () => upstream.cancel());
    }) as grpc.handleUnaryCall<Buffer, Buffer>;
  }
  return { definition: definition as grpc.ServiceDefinition, handlers, close: () => client.close() };
}
