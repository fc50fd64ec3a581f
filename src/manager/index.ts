export { bootstrapBlobIds, bootstrapPath } from "./bootstrap.ts";
export { type DaemonInfoReply, NydusdClient } from "./client.ts";
export { daemonPaths, newDaemonId, nextApiSocket, nydusdArgs } from "./command.ts";
export { instanceConfig, loadTemplate, pickMirror } from "./daemon-config.ts";
export { blobIdOfCacheFile, type CredentialLookup, type GcStats, NydusFs } from "./filesystem.ts";
export { Manager, type ManagerOptions } from "./manager.ts";
export { type NydusdCommand, pidAlive } from "./process.ts";
export { PrefetchLists } from "./prefetch.ts";
