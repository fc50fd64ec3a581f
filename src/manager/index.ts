export { type DaemonInfoReply, NydusdClient } from "./client.ts";
export { daemonConfigFile, daemonPaths, newDaemonId, nextApiSocket, nydusdArgs } from "./command.ts";
export { Manager } from "./manager.ts";
export type { ManagerConfig, ManagerOptions } from "./options.ts";
export type { ReapRunDir } from "./process.ts";
export { type NydusdCommand, pidAlive } from "./process.ts";
export { PrefetchLists } from "./prefetch.ts";
