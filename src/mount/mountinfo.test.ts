import { expect, test } from "bun:test";
import { isFuseMount } from "./fusectl.ts";
import { mountEntries, mountPoints } from "./mountinfo.ts";

const TEXT = [
  "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "45 27 0:40 / /run/rafsnap/nydusd-12/blobfs ro,nosuid,nodev,relatime - fuse.rafsnap-blobfs rafsnap-blobfs ro,user_id=0",
  "46 27 0:41 / /var/lib/with\\040space ro,relatime shared:9 master:3 - erofs /boot/image.boot ro,user_xattr",
  "",
].join("\n");

test("mountinfo lines give mount point, type, source and device (optional fields skipped)", () => {
  const e = mountEntries(TEXT);
  expect(e.map((x) => [x.mountPoint, x.fsType, x.source, x.major, x.minor])).toEqual([
    ["/", "ext4", "/dev/vda", 254, 0],
    ["/run/rafsnap/nydusd-12/blobfs", "fuse.rafsnap-blobfs", "rafsnap-blobfs", 0, 40],
    ["/var/lib/with space", "erofs", "/boot/image.boot", 0, 41],
  ]);
  expect(mountPoints(TEXT)).toEqual(["/", "/run/rafsnap/nydusd-12/blobfs", "/var/lib/with space"]);
  expect(e.map(isFuseMount)).toEqual([false, true, false]);
});
