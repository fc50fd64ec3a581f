/** mount(2)/umount2(2) through bun:ffi. */
export * from "./mount.ts";
export { mountAsync, umountAsync } from "./async.ts";
export { type FdState, fetchState, receiveState, sendState, serveState, Supervisor } from "./fdpass.ts";
export { isMountpoint, mountPoints } from "./mountinfo.ts";
export { prepareSocketPath, socketAccepts } from "./socket.ts";
