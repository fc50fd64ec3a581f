import { readFileSync } from "node:fs";

/** Decodes the octal escapes (`\040` for a space) of a /proc/self/mountinfo field. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** One line of `/proc/self/mountinfo`: what rafsnap needs of it. */
export interface MountEntry {
  /** Where it is mounted (field 5). */
  mountPoint: string;
  /** File system type (after the ` - ` separator), e.g. `fuse.rafsnap-blobfs`, `erofs`. */
  fsType: string;
  /** Mount source (after the type). */
  source: string;
  /** `st_dev` of the mount as major and minor; for FUSE the minor is the connection id. */
  major: number;
  minor: number;
}

/** The mounts listed in `/proc/self/mountinfo` (or `text`), in order. */
export function mountEntries(text = readFileSync("/proc/self/mountinfo", "utf8")): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    const [major, minor] = (f[2] ?? "0:0").split(":").map(Number);
    out.push({
      mountPoint: unescapeOctal(f[4] ?? ""),
      fsType: sep > 0 ? (f[sep + 1] ?? "") : "",
      source: sep > 0 ? unescapeOctal(f[sep + 2] ?? "") : "",
      major: major ?? 0,
      minor: minor ?? 0,
    });
  }
  return out;
}

/** Mount points listed in `/proc/self/mountinfo` (field 5), in order. */
export function mountPoints(text = readFileSync("/proc/self/mountinfo", "utf8")): string[] {
  return mountEntries(text).map((e) => e.mountPoint);
}

/** True when `path` is a mount point. */
export function isMountpoint(path: string): boolean {
  return mountPoints().includes(path);
}
