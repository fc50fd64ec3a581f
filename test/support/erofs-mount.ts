// `bun test/support/erofs-mount.ts BOOTSTRAP TARGET DEVICE...`: mounts a RAFS v6 bootstrap
// with the kernel's EROFS driver, file-backed, one device= per blob. Run as a separate
// process because the blob devices may be served by a FUSE session in the calling process,
// whose main thread must stay free to answer while mount(2) blocks.
import { MountFlags, mount } from "../../src/mount/index.ts";

const [boot, target, ...devices] = process.argv.slice(2);
if (!boot || !target) {
  console.error("usage: erofs-mount.ts BOOTSTRAP TARGET DEVICE...");
  process.exit(2);
}
mount(boot, target, "erofs", MountFlags.MS_RDONLY, devices.map((d) => `device=${d}`).join(","));
