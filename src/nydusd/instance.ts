import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument, notImplemented } from "../errdefs/index.ts";
import { FuseSession } from "../fuse/index.ts";
import type { Logger } from "../log/index.ts";
import { MountFlags, mount, mountAsync, UmountFlags, umount, umountAsync } from "../mount/index.ts";
import { RafsImage } from "../rafs/index.ts";
import { RegistryClient } from "../registry/index.ts";
import { type BlobBackend, localfsBackend, registryBackend } from "./backend.ts";
import { Blobfs, openBlob } from "./blobfs.ts";
import type { BackendConfig, DaemonConfig } from "./config.ts";

/** A mounted RAFS instance: the EROFS mount and the blobfs serving its blobs. */
export interface Instance {
  id: string;
  bootstrap: string;
  mountpoint: string;
  blobfs: Blobfs;
  /** Unmounts EROFS, then the blobfs, and closes the caches. */
  umount(): Promise<void>;
}

/** The backend a daemon config names. */
export function backendOf(c: BackendConfig): BlobBackend {
  if (c.type === "localfs") {
    if (c.dir) return localfsBackend(c.dir);
    const file = c.blobFile as string;
    return localfsBackend(file.slice(0, file.lastIndexOf("/")) || "/");
  }
  let credentials: { username: string; password: string } | undefined;
  if (c.auth) {
    const plain = Buffer.from(c.auth, "base64").toString();
    const i = plain.indexOf(":");
    if (i <= 0) throw invalidArgument("nydusd config: device.backend.config.auth is not base64 of user:password");
    credentials = { username: plain.slice(0, i), password: plain.slice(i + 1) };
  }
  const client = new RegistryClient(c.host, {
    plainHttp: c.scheme === "http" ? true : c.scheme === "https" ? false : undefined,
    skipVerify: c.skipVerify,
    caCert: c.caCertFiles.length ? c.caCertFiles.map((f) => readFileSync(f, "utf8")).join("\n") : undefined,
    credentials,
    retries: c.retryLimit,
    timeoutMs: c.timeoutSeconds * 1000,
  });
  return registryBackend(client, c.repo);
}

/**
 * Mounts the RAFS v6 image `bootstrap` at `mountpoint`: opens its blobs (fetching each CI
 * table once, then cached in `config.workDir`), serves them on a FUSE blobfs at
 * `<runDir>/blobfs`, and mounts the bootstrap with the kernel's EROFS driver, file-backed,
 * one `device=` per blob. Throws InvalidArgument for a malformed bootstrap, NotImplemented
 * for RAFS v5; whatever was mounted is undone on failure.
 */
export async function mountInstance(opts: {
  id: string;
  bootstrap: string;
  mountpoint: string;
  config: DaemonConfig;
  runDir: string;
  logger: Logger;
}): Promise<Instance> {
  const bytes = new Uint8Array(readFileSync(opts.bootstrap));
  if (bytes.length >= 4 && new TextDecoder().decode(bytes.subarray(0, 4)) === "RAFS") {
    throw notImplemented(`${opts.bootstrap}: RAFS v5 is not supported yet (convert the image to RAFS v6)`);
  }
  let image: RafsImage;
  try {
    image = RafsImage.open(bytes);
  } catch (e) {
    throw invalidArgument(`${opts.bootstrap}: ${(e as Error).message}`, e);
  }
  const backend = backendOf(opts.config.backend);
  const blobs = [];
  for (const entry of image.blobs) {
    const digests = new Map(image.chunkTable.filter((e) => e.blobIndex === entry.blobIndex).map((e) => [e.ciIndex, e.digest]));
    blobs.push(await openBlob(entry, backend, opts.config.workDir, digests));
  }
  const fs = new Blobfs(blobs, backend, { digestValidate: opts.config.digestValidate, amplifyIo: opts.config.amplifyIo, logger: opts.logger });
  const blobMnt = join(opts.runDir, "blobfs");
  mkdirSync(blobMnt, { recursive: true, mode: 0o700 });
  mkdirSync(opts.mountpoint, { recursive: true });
  const fd = openSync("/dev/fuse", "r+");
  let session: FuseSession | undefined;
  const undo = async () => {
    try {
      umount(blobMnt, UmountFlags.MNT_DETACH);
    } catch {
      // not mounted
    }
    session?.stop();
    closeSync(fd);
    fs.close();
  };
  try {
    mount("rafsnap-blobfs", blobMnt, "fuse.rafsnap-blobfs", MountFlags.MS_RDONLY | MountFlags.MS_NOSUID | MountFlags.MS_NODEV, `fd=${fd},rootmode=40000,user_id=0,group_id=0,allow_other`);
    session = FuseSession.start(fd, fs, { logger: opts.logger });
    const devices = image.blobs.map((b) => `device=${join(blobMnt, b.blobId)}`).join(",");
    await mountAsync(opts.bootstrap, opts.mountpoint, "erofs", MountFlags.MS_RDONLY, devices || null);
  } catch (e) {
    await undo();
    throw e;
  }
  return {
    id: opts.id,
    bootstrap: opts.bootstrap,
    mountpoint: opts.mountpoint,
    blobfs: fs,
    async umount() {
      await umountAsync(opts.mountpoint).catch(() => umountAsync(opts.mountpoint, UmountFlags.MNT_DETACH));
      await undo();
    },
  };
}
