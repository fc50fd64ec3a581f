/** mount(2)/umount2(2) through bun:ffi. */
export * from "./mount.ts";
export { mountAsync, umountAsync } from "./async.ts";
