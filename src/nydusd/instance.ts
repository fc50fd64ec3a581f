import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument, notImplemented } from "../errdefs/index.ts";
import { FuseSession } from "../fuse/index.ts";
import type { Logger } from "../log/index.ts";
import { MountFlags, mount, mountErofs, UmountFlags, umount, umountAsync } from "../mount/index.ts";
import { RafsImage } from "../rafs/index.ts";
import { RegistryClient } from "../registry/index.ts";
import { type BlobBackend, localfsBackend, registryBackend, type Tier, tieredBackend } from "./backend.ts";
import { Blobfs, openBlob } from "./blobfs.ts";
import type { BackendConfig, DaemonConfig } from "./config.ts";

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
 * the supervisor (the mount at `dir` is still there) and asks the kernel to resend the
 * requests the predecessor never answered.
 */
export function adoptBlobfs(dir: string, fd: number, fs: Blobfs, logger: Logger): BlobfsMount {
  const session = FuseSession.start(fd, fs, { logger });
  session.notifyResend();
  return blobfsMountOf(fs, dir, fd, session);
}

/**
 * Mounts the daemon's blobfs at `<runDir>/blobfs` (a FUSE mount of type fuse.rafsnap-blobfs,
 * read-only, nosuid, nodev) and starts serving it. Throws (having undone everything) when
 * `/dev/fuse` cannot be opened or the mount fails.
 */
export function startBlobfs(runDir: string, opts: { amplifyIo?: number; logger: Logger }): BlobfsMount {
  const fs = new Blobfs(opts);
  const dir = join(runDir, "blobfs");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fd = openSync("/dev/fuse", "r+");
  try {
    mount("rafsnap-blobfs", dir, "fuse.rafsnap-blobfs", MountFlags.MS_RDONLY | MountFlags.MS_NOSUID | MountFlags.MS_NODEV, `fd=${fd},rootmode=40000,user_id=0,group_id=0,allow_other`);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return blobfsMountOf(fs, dir, fd, FuseSession.start(fd, fs, { logger: opts.logger }));
}

/** Decodes base64 `user:password` (`auth`, `registry_auth`); InvalidArgument naming `what`. */
export function decodeAuth(auth: string, what: string): { username: string; password: string } {
  const plain = Buffer.from(auth, "base64").toString();
  const i = plain.indexOf(":");
  if (i <= 0) throw invalidArgument(`${what} is not base64 of user:password`);
  return { username: plain.slice(0, i), password: plain.slice(i + 1) };
}

/** The backend a daemon config names. */
export function backendOf(c: BackendConfig, log?: (msg: string) => void): BlobBackend {
  if (c.type === "localfs") {
    return c.blobFile ? localfsBackend(c.dir ?? "", c.blobFile) : localfsBackend(c.dir as string);
  }
  const credentials = c.auth ? decodeAuth(c.auth, "nydusd config: device.backend.config.auth") : undefined;
  const caCert = c.caCertFiles.length ? c.caCertFiles.map((f) => readFileSync(f, "utf8")).join("\n") : undefined;
  const common = { skipVerify: c.skipVerify, caCert, credentials, bearerToken: c.registryToken || undefined, timeoutMs: c.timeoutSeconds * 1000 };
  const origin = registryBackend(
    new RegistryClient(c.host, { ...common, plainHttp: c.scheme === "http" ? true : c.scheme === "https" ? false : undefined, retries: c.retryLimit }),
    c.repo,
  );
  if (c.mirrors.length === 0 && !c.proxy) return origin;
  // Mirrors and the proxy fail over quickly (one retry); the origin keeps retry_limit.
  const endpoint = (url: string) => {
    const m = url.match(/^(https?):\/\/([^/]+)/);
    const host = m ? (m[2] as string) : url.replace(/\/.*$/, "");
    return registryBackend(new RegistryClient(host, { ...common, plainHttp: m ? m[1] === "http" : undefined, retries: 1 }), c.repo);
  };
  const tiers: Tier[] = [];
  if (c.proxy) tiers.push({ backend: endpoint(c.proxy.url), failureLimit: 1, skipMs: c.proxy.checkIntervalSeconds * 1000, fallback: c.proxy.fallback });
  for (const m of c.mirrors) tiers.push({ backend: endpoint(m.host), failureLimit: m.failureLimit, skipMs: m.healthCheckIntervalSeconds * 1000, fallback: true });
  tiers.push({ backend: origin, failureLimit: 1, skipMs: 0, fallback: false });
  return tieredBackend(tiers, log);
}

/** The chunk table's digests by blob index, then CI index (one pass over the table). */
function chunkDigests(image: RafsImage): Map<number, Map<number, string>> {
  const byBlob = new Map<number, Map<number, string>>();
  for (const e of image.chunkTable) {
    let m = byBlob.get(e.blobIndex);
    if (!m) byBlob.set(e.blobIndex, (m = new Map()));
    m.set(e.ciIndex, e.digest);
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
  const backend = backendOf(opts.config.backend, opts.log);
  const added: string[] = [];
  const release = () => {
    for (const id of added) opts.blobfs.fs.remove(id);
  };
  try {
    const digests = opts.config.digestValidate ? chunkDigests(image) : undefined;
    for (const entry of image.blobs) {
      const blob = await openBlob(entry, backend, opts.config.workDir, digests?.get(entry.blobIndex) ?? new Map<number, string>());
      opts.blobfs.fs.add(blob, backend, opts.attach?.get(entry.blobId));
      added.push(entry.blobId);
    }
    if (!opts.attach) {
      mkdirSync(opts.mountpoint, { recursive: true });
      const paths = image.blobs.map((b) => join(opts.blobfs.dir, b.blobId));
      const m = await mountErofs(opts.bootstrap, opts.mountpoint, paths, process.env.RAFSNAP_EROFS_LOOP === "1");
      if (m.via === "loop") opts.log?.(`${opts.mountpoint}: this kernel has no file-backed EROFS; mounted over loop devices ${m.loops.join(" ")}`);
    }
  } catch (e) {
    release();
    throw e;
  }
  const prefetch = new AbortController();
  if (opts.config.prefetch.enable) void prefetchInstance(image, opts.blobfs.fs, opts.config, opts.prefetchFiles ?? [], prefetch.signal);
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
    },
  };
}

/**
 * Background prefetch of one instance (`fs_prefetch`): first the chunks of `files` and of the
 * bootstrap's prefetch table, then — with `prefetch_all` — every blob whole, `threads_count`
 * fetches at a time. Best effort: a path that does not resolve is skipped.
 */
async function prefetchInstance(image: RafsImage, fs: Blobfs, config: DaemonConfig, files: string[], signal: AbortSignal): Promise<void> {
  const concurrency = Math.max(1, config.prefetch.threadsCount);
  const inodes = [
    ...files.flatMap((p) => {
      try {
        return [image.lookup(p)];
      } catch {
        return [];
      }
    }),
    ...image.prefetch.map((nid) => image.inode(nid)),
  ];
  for (const inode of inodes) {
    if ((inode.mode & 0o170000) !== 0o100000) continue;
    for (const c of image.chunks(inode)) {
      if (signal.aborted) return;
      const blob = image.blobs[c.blobIndex];
      if (blob) await fs.prefetch(blob.blobId, { offset: c.uncompressedOffset, length: c.length, concurrency, signal });
    }
  }
  if (!config.prefetch.prefetchAll) return;
  for (const b of image.blobs) {
    if (signal.aborted) return;
    await fs.prefetch(b.blobId, { concurrency, signal });
  }
}
