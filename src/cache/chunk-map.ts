import { closeSync, existsSync, fdatasyncSync, ftruncateSync, openSync, readdirSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { internal } from "../errdefs/index.ts";

/** Suffixes of the cache files rafsnap's daemon writes for a blob (after its id). */
const OWN_SUFFIX = { data: ".blob.data", chunkMap: ".chunk_map", meta: ".blob.meta" } as const;

/**
 * Every cache file suffix a blob may have in the cache directory (§8): ours, and those the
 * real nydusd writes into the same directory (`.blob.data.chunk_map`, `.image.disk`,
 * `.layer.disk`). Longest first, so that `.blob.data.chunk_map` is not read as `.chunk_map`.
 */
const ALL_SUFFIXES = [".blob.data.chunk_map", OWN_SUFFIX.chunkMap, OWN_SUFFIX.data, OWN_SUFFIX.meta, ".image.disk", ".layer.disk"];

/** Cache file names of one blob (docs/compat.md §8): the one place these names are made. */
export function cacheFiles(dir: string, blobId: string) {
  return {
    data: join(dir, `${blobId}${OWN_SUFFIX.data}`),
    chunkMap: join(dir, `${blobId}${OWN_SUFFIX.chunkMap}`),
    meta: join(dir, `${blobId}${OWN_SUFFIX.meta}`),
  };
}

/** The blob id of a cache file name: its §8 suffix stripped; any other name is an id as it stands. */
export function blobIdOfCacheFile(name: string): string {
  for (const suffix of ALL_SUFFIXES) {
    if (name.endsWith(suffix)) return name.slice(0, -suffix.length);
  }
  return name;
}

/** Removal rank of a cache file (§8 order): chunk maps, then meta, then data, disk images last. */
function removalRank(name: string): number {
  return name.endsWith("chunk_map") ? 0 : name.endsWith(OWN_SUFFIX.meta) ? 1 : name.endsWith(".disk") ? 3 : 2;
}

/**
 * The regular files in cache directory `dir`, grouped by blob id ({@link blobIdOfCacheFile}).
 * Throws the file system's error when `dir` cannot be read; an entry that vanishes meanwhile
 * is left out.
 */
export function blobCachesIn(dir: string): Map<string, string[]> {
  const byBlob = new Map<string, string[]>();
  for (const n of readdirSync(dir)) {
    try {
      if (!statSync(join(dir, n)).isFile()) continue;
    } catch {
      continue;
    }
    const id = blobIdOfCacheFile(n);
    byBlob.set(id, [...(byBlob.get(id) ?? []), n]);
  }
  return byBlob;
}

/**
 * Removes the cache files `names` (in `dir`) of one blob in §8 order — chunk maps first, so
 * that a crash midway never leaves a map claiming data that is gone. Missing files are fine;
 * throws the first other removal error (the files after it are left).
 */
export function removeCacheFiles(dir: string, names: readonly string[]): void {
  for (const n of [...names].sort((a, b) => removalRank(a) - removalRank(b))) rmSync(join(dir, n), { force: true });
}

const MAGIC = 0x4d434652; // "RFCM" little-endian: rafsnap chunk map
/** 2: the header carries the blob's trust key (1 had none: such maps are reset once). */
const VERSION = 2;
/** Bytes of a trust key. */
export const TRUST_KEY_BYTES = 32;
/** Bytes before the bitmap in a chunk map file. */
export const MAP_HEADER = 16 + TRUST_KEY_BYTES;

/**
 * The on-disk chunk map of one blob: a 48-byte header (magic "RFCM", version 2, chunk count,
 * 4 reserved bytes, the 32-byte trust key) and a bitmap, bit `ci` set when chunk `ci`'s bytes
 * are durable in the data file and were verified against the chunk digests the trust key
 * stands for. Only {@link BlobCache} writes it, and only bits whose data it synced first.
 */
export class ChunkMapFile {
  private constructor(
    private readonly fd: number,
    private readonly path: string,
  ) {}

  /**
   * Opens (creating) the map at `path` for `chunkCount` chunks and loads its bits into
   * `bitmap`. A map of another size, format or trust `key` (32 bytes) is reset to empty:
   * bytes checked against other expectations are never trusted, every chunk is fetched again.
   * Throws the file system's error when it cannot be opened, read or written.
   */
  static open(path: string, chunkCount: number, bitmap: Uint8Array, key: Uint8Array = new Uint8Array(TRUST_KEY_BYTES)): ChunkMapFile {
    if (key.length !== TRUST_KEY_BYTES) throw internal(`chunk map ${path}: a trust key has ${TRUST_KEY_BYTES} bytes, not ${key.length}`);
    const fd = openSync(path, existsSync(path) ? "r+" : "w+", 0o600);
    try {
      const bytes = bitmap.length;
      const head = new Uint8Array(MAP_HEADER);
      const got = readSync(fd, head, 0, MAP_HEADER, 0);
      const hv = new DataView(head.buffer);
      const size = statSync(path).size;
      const sameKey = Buffer.from(head.subarray(16)).equals(Buffer.from(key));
      if (
        got === MAP_HEADER &&
        hv.getUint32(0, true) === MAGIC &&
        hv.getUint32(4, true) === VERSION &&
        hv.getUint32(8, true) === chunkCount &&
        sameKey &&
        size === MAP_HEADER + bytes
      ) {
        if (bytes > 0) readSync(fd, bitmap, 0, bytes, MAP_HEADER);
      } else {
        hv.setUint32(0, MAGIC, true);
        hv.setUint32(4, VERSION, true);
        hv.setUint32(8, chunkCount, true);
        hv.setUint32(12, 0, true);
        head.set(key, 16);
        ftruncateSync(fd, 0);
        writeSync(fd, head, 0, MAP_HEADER, 0);
        writeSync(fd, new Uint8Array(bytes), 0, bytes, MAP_HEADER);
        fdatasyncSync(fd);
      }
      return new ChunkMapFile(fd, path);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Writes bitmap bytes `indexes` of `bitmap` in place and syncs the map. */
  writeBytes(bitmap: Uint8Array, indexes: Iterable<number>): void {
    for (const i of indexes) writeSync(this.fd, bitmap, i, 1, MAP_HEADER + i);
    fdatasyncSync(this.fd);
  }

  /** Closes the map file. */
  close(): void {
    closeSync(this.fd);
  }

  /** Path of the map file (for messages). */
  toString(): string {
    return this.path;
  }
}

/**
 * Bytes on disk used by the cache files of `blobId` (allocated blocks, as sparse data files
 * only use what was fetched). Missing files count 0.
 */
export function blobCacheUsage(dir: string, blobId: string): number {
  let total = 0;
  for (const p of Object.values(cacheFiles(dir, blobId))) {
    try {
      total += statSync(p).blocks * 512;
    } catch {
      // not there
    }
  }
  return total;
}

/** Removes the cache files of `blobId`: chunk map first, then meta, then data (§8 order). */
export function removeBlobCache(dir: string, blobId: string): void {
  removeCacheFiles(
    dir,
    Object.values(OWN_SUFFIX).map((s) => `${blobId}${s}`),
  );
}
