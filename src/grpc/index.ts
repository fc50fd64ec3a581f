export { codeOf, toServiceError } from "./errors.ts";
export { infoFromPb, infoToPb, mountsToPb, timestampOf } from "./convert.ts";
export { type CallContext, listenUnix, type ListenOptions, type RawRegistration, type Registration, type RunningServer, type ServiceImpl } from "./server.ts";
export { snapshotsService } from "./snapshots-service.ts";
