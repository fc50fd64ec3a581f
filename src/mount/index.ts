/** mount(2)/umount2(2) through bun:ffi. */
export * from "./mount.ts";
export { fsMountReadonlyAsync, mountAsync, umountAsync } from "./async.ts";
export { fsMountReadonly } from "./fsmount.ts";
export { type FdState, fetchState, receiveState, sendState, serveState, Supervisor } from "./fdpass.ts";
export { isMountpoint, type MountEntry, mountEntries, mountPoints } from "./mountinfo.ts";
export { abortFuseConnection, ensureFusectl, FUSECTL_DIR, fuseConnections, isFuseMount } from "./fusectl.ts";
export { bindPrivately, prepareSocketPath, serveHttpUnix, socketAccepts } from "./socket.ts";
export { type ErofsMount, mountErofs } from "./erofs.ts";
export { fsSysfsPath, setReadAheadKb } from "./readahead.ts";
