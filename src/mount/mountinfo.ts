import { readFileSync } from "node:fs";

/** Decodes the octal escapes (`\040` for a space) of a /proc/self/mountinfo field. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points listed in `/proc/self/mountinfo` (field 5), in order. */
export function mountPoints(text = readFileSync("/proc/self/mountinfo", "utf8")): string[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => unescape(l.split(" ")[4] ?? ""));
}

/** True when `path` is a mount point. */
export function isMountpoint(path: string): boolean {
  return mountPoints().includes(path);
}
