/**
 * FUSE connections through the fusectl file system (`/sys/fs/fuse/connections/<id>/`, `<id>`
 * = the minor device number of the FUSE mount): the one place rafsnap looks at or aborts a
 * FUSE connection. Aborting fails every request waiting on the connection (ENOTCONN) and
 * every later one, so a connection whose server is gone never blocks a reader or `sync`.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mount } from "./mount.ts";
import { type MountEntry, mountEntries } from "./mountinfo.ts";

/** Where fusectl is mounted. */
export const FUSECTL_DIR = "/sys/fs/fuse/connections";

/** True for a FUSE mount (`fuse`, `fuse.<subtype>`, `fuseblk`). */
export function isFuseMount(e: Pick<MountEntry, "fsType">): boolean {
  return e.fsType === "fuse" || e.fsType === "fuseblk" || e.fsType.startsWith("fuse.");
}

/**
 * Makes sure fusectl is mounted at {@link FUSECTL_DIR} (mounting it when the directory exists
 * but nothing is mounted there); false when it cannot be (no fuse module, no permission).
 */
export function ensureFusectl(): boolean {
  if (mountEntries().some((e) => e.mountPoint === FUSECTL_DIR && e.fsType === "fusectl")) return true;
  if (!existsSync(FUSECTL_DIR)) return false;
  try {
    mount("fusectl", FUSECTL_DIR, "fusectl", 0, null);
    return true;
  } catch {
    return false;
  }
}

/** The FUSE connections the kernel has (ids), with their waiting requests; [] without fusectl. */
export function fuseConnections(): { id: number; waiting: number }[] {
  if (!ensureFusectl()) return [];
  const out: { id: number; waiting: number }[] = [];
  for (const name of readdirSync(FUSECTL_DIR)) {
    if (!/^\d+$/.test(name)) continue;
    let waiting = 0;
    try {
      waiting = Number(readFileSync(join(FUSECTL_DIR, name, "waiting"), "utf8").trim()) || 0;
    } catch {
      continue; // gone meanwhile
    }
    out.push({ id: Number(name), waiting });
  }
  return out;
}

/**
 * Aborts FUSE connection `id`: its server, if any, gets ENODEV; waiting and later requests
 * fail with ENOTCONN. Returns false when there is no such connection or fusectl is not
 * available.
 */
export function abortFuseConnection(id: number): boolean {
  if (!ensureFusectl()) return false;
  const f = join(FUSECTL_DIR, String(id), "abort");
  try {
    writeFileSync(f, "1");
    return true;
  } catch {
    return false;
  }
}
