export { type ApiServer, type DaemonApi, type DaemonInfo, type MountRequest, route, startApiServer, statusOf } from "./api.ts";
export { type BlobBackend, httpPing, localfsBackend, registryBackend } from "./backend.ts";
export { type BlobfsBlob, openBlob } from "./blob-open.ts";
export { Blobfs, type BlobfsOptions, type BlobfsStats } from "./blobfs.ts";
export { type DaemonEvent, type DaemonState, DaemonStateMachine } from "./state.ts";
export { type BackendConfig, type DaemonConfig, loadDaemonConfig, parseDaemonConfig } from "./config.ts";
export { Daemon, type DaemonOptions, type VersionFacts } from "./daemon.ts";
export { backendOf, type Instance, mountInstance } from "./instance.ts";
export { predecessorCrashed } from "./crash.ts";
