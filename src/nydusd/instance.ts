import { closeSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument, resourceExhausted } from "../errdefs/index.ts";
import { FuseSession } from "../fuse/index.ts";
import type { Logger } from "../log/index.ts";
import { MountFlags, mount, mountErofs, UmountFlags, umount, umountAsync } from "../mount/index.ts";
import { type ChunkTableEntry, isBlobId, openBootstrapBytes, type RafsImage } from "../rafs/index.ts";
import { fdPath, type LayerFile, LayerFileError, openRegular, readLayerFile } from "../sys/index.ts";
import { type BlobBackend, backendFromConfig } from "./backend.ts";
import { openBlob } from "./blob-open.ts";
import { Blobfs } from "./blobfs.ts";
import type { DaemonConfig } from "./config.ts";
import { prefetchInstance } from "./prefetch.ts";
import { BLOBFS_FSTYPE, blobfsDir } from "./run-dir.ts";

/** A mounted RAFS instance: the EROFS mount over blobs of the daemon's blobfs. */
export interface Instance {
  id: string;
  bootstrap: string;
  mountpoint: string;
  config: DaemonConfig;
  blobIds: string[];
  /** Where its blobs come from (auth can be replaced at run time). */
  backend: BlobBackend;
  /** Unmounts EROFS and releases the instance's blobs. */
  umount(): Promise<void>;
}

/** The daemon's blobfs: the FUSE mount at `dir` serving `fs`. */
export interface BlobfsMount {
  fs: Blobfs;
  dir: string;
  /** The `/dev/fuse` descriptor (what failover hands to the supervisor). */
  fd: number;
  session: FuseSession;
  /**
   * Unmounts (lazily), stops the reader threads, closes the descriptor and the caches, and
   * removes the mount directory.
   */
  stop(): void;
}

function blobfsMountOf(fs: Blobfs, dir: string, fd: number, session: FuseSession): BlobfsMount {
  return {
    fs,
    dir,
    fd,
    session,
    stop() {
      try {
        umount(dir, UmountFlags.MNT_DETACH);
      } catch {
        // not mounted
      }
      session.stop();
      closeSync(fd);
      fs.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Takes over a predecessor's blobfs: serves `fs` on the FUSE descriptor `fd` received from
 * the supervisor (the mount at `dir` is still there) with `workers` reader threads. Whether
 * the kernel is asked to resend what the predecessor left unanswered is the caller's choice
 * (the failover policy), once every blob is attached.
 */
export function adoptBlobfs(dir: string, fd: number, fs: Blobfs, opts: { logger: Logger; workers?: number }): BlobfsMount {
  return blobfsMountOf(fs, dir, fd, FuseSession.start(fd, fs, { logger: opts.logger, workers: opts.workers }));
}

/**
 * Mounts the daemon's blobfs at `<runDir>/blobfs` (a FUSE mount of type fuse.rafsnap-blobfs,
 * read-only, nosuid, nodev) and starts serving it. Throws (having undone everything) when
 * `/dev/fuse` cannot be opened or the mount fails.
 */
export function startBlobfs(runDir: string, opts: { amplifyIo?: number; logger: Logger; workers?: number }): BlobfsMount {
  const fs = new Blobfs(opts);
  const dir = blobfsDir(runDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fd = openSync("/dev/fuse", "r+");
  try {
    mount(
      "rafsnap-blobfs",
      dir,
      BLOBFS_FSTYPE,
      MountFlags.MS_RDONLY | MountFlags.MS_NOSUID | MountFlags.MS_NODEV,
      `fd=${fd},rootmode=40000,user_id=0,group_id=0,allow_other`,
    );
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return blobfsMountOf(fs, dir, fd, FuseSession.start(fd, fs, { logger: opts.logger, workers: opts.workers }));
}

export { decodeAuth } from "./backend.ts";

/** The backend a daemon config names (see {@link backendFromConfig}); `close()` it when done. */
export const backendOf = backendFromConfig;

/** The largest bootstrap a daemon mounts (bytes); the snapshotter applies the same cap. */
export const MAX_BOOTSTRAP_BYTES = 1 << 30;

/**
 * Chunks one image may declare over all its blobs, and one daemon may serve over all its
 * images (each costs memory for its CI entry, about 150 bytes). A 1 MiB-chunk image under the
 * image cap holds up to a TiB; real images hold thousands to a few hundred thousand.
 */
export const ChunkLimit = { image: 1 << 20, daemon: 1 << 21 } as const;

/** The chunk table's entries by blob index (one pass over the table). */
function chunksByBlob(image: RafsImage): Map<number, ChunkTableEntry[]> {
  const byBlob = new Map<number, ChunkTableEntry[]>();
  for (const e of image.chunkTable) {
    let m = byBlob.get(e.blobIndex);
    if (!m) byBlob.set(e.blobIndex, (m = []));
    m.push(e);
  }
  return byBlob;
}

/**
 * Mounts the RAFS v6 image `bootstrap` at `mountpoint`: opens its blobs (fetching each CI
 * table once, then cached in `config.workDir`), adds them to the daemon's blobfs, and mounts
 * the bootstrap with the kernel's EROFS driver, file-backed, one `device=` per blob. Throws
 * InvalidArgument for a malformed bootstrap, NotImplemented for RAFS v5; the blobs are
 * released again on failure.
 */
export async function mountInstance(opts: {
  id: string;
  bootstrap: string;
  mountpoint: string;
  config: DaemonConfig;
  blobfs: BlobfsMount;
  /**
   * Takeover: the EROFS mount already exists (made by the predecessor); only serve its blobs,
   * with the inode numbers given here.
   */
  attach?: Map<string, bigint>;
  /** Paths to fetch first (`--prefetch-files`, or a mount request's `prefetch_files`). */
  prefetchFiles?: string[];
  /** Hears about backend failovers (mirror/proxy → next endpoint). */
  log?: (msg: string) => void;
}): Promise<Instance> {
  // One descriptor for what is parsed and what is mounted: a regular file only (never a FIFO or
  // a device), size-capped; the kernel mounts this very file through /proc/<pid>/fd.
  let file: LayerFile;
  try {
    file = openRegular(opts.bootstrap, "bootstrap", MAX_BOOTSTRAP_BYTES);
  } catch (e) {
    throw e instanceof LayerFileError ? invalidArgument(e.message, e) : e;
  }
  try {
    return await mountOpened(opts, file);
  } finally {
    closeSync(file.fd);
  }
}

async function mountOpened(opts: Parameters<typeof mountInstance>[0], file: LayerFile): Promise<Instance> {
  const image = openBootstrapBytes(readLayerFile(file), opts.bootstrap);
  const unservable = image.blobs.find((b) => !isBlobId(b.blobId));
  if (unservable)
    throw invalidArgument(
      `${opts.bootstrap}: blob ${unservable.blobIndex} has id ${JSON.stringify(unservable.blobId)}, not a sha256 (a bootstrap inlined in its blob cannot be mounted on its own)`,
    );
  const backend = backendOf(opts.config.backend, opts.log);
  const added: string[] = [];
  const release = () => {
    for (const id of added) opts.blobfs.fs.remove(id);
  };
  try {
    // Chunks are checked against this image's digests: cached ones from an earlier session
    // always, fetched ones with digest_validate or once a second image shares the blob; a
    // blob is shared only with images that expect the same bytes (docs/security.md).
    const byBlob = chunksByBlob(image);
    const declared = image.blobs.reduce((n, b) => n + b.chunkCount, 0);
    if (declared > ChunkLimit.image)
      throw resourceExhausted(`${opts.bootstrap}: the image declares ${declared} chunks, more than the ${ChunkLimit.image} an image may have`);
    for (const entry of image.blobs) {
      const chunks = byBlob.get(entry.blobIndex) ?? [];
      // Served already (another instance of an image sharing it): one more reference once
      // its expectations agree with the served blob's, no second parse of its CI table.
      if (await opts.blobfs.fs.acquire(entry, chunks)) {
        added.push(entry.blobId);
        continue;
      }
      const served = opts.blobfs.fs.servedChunks();
      if (served + entry.chunkCount > ChunkLimit.daemon) {
        throw resourceExhausted(
          `blob ${entry.blobId}: ${entry.chunkCount} more chunks would make this daemon serve ${served + entry.chunkCount}, more than ${ChunkLimit.daemon}; use another daemon (dedicated mode)`,
        );
      }
      const blob = await openBlob(entry, backend, opts.config.workDir, chunks, opts.config.digestValidate);
      opts.blobfs.fs.add(blob, backend, opts.attach?.get(entry.blobId));
      added.push(entry.blobId);
    }
    if (!opts.attach) {
      mkdirSync(opts.mountpoint, { recursive: true });
      const paths = image.blobs.map((b) => join(opts.blobfs.dir, b.blobId));
      const m = await mountErofs(fdPath(file.fd), opts.mountpoint, paths, process.env.RAFSNAP_EROFS_LOOP === "1");
      if (m.via === "loop") opts.log?.(`${opts.mountpoint}: this kernel has no file-backed EROFS; mounted over loop devices ${m.loops.join(" ")}`);
    }
  } catch (e) {
    release();
    backend.close?.();
    throw e;
  }
  const prefetch = new AbortController();
  if (opts.config.prefetch.enable) void prefetchInstance(image, opts.blobfs.fs, opts.config, opts.prefetchFiles ?? [], prefetch.signal, opts.log);
  return {
    id: opts.id,
    bootstrap: opts.bootstrap,
    mountpoint: opts.mountpoint,
    config: opts.config,
    blobIds: added,
    backend,
    async umount() {
      prefetch.abort();
      await umountAsync(opts.mountpoint).catch(() => umountAsync(opts.mountpoint, UmountFlags.MNT_DETACH));
      release();
      backend.close?.();
    },
  };
}
