/**
 * A RAFS v6 bootstrap opened for reading: superblocks, device and blob tables, chunk and
 * prefetch tables parsed and cross-checked once; inodes, directories, xattrs and chunk indexes
 * read on demand.
 */
import { notFound } from "../errdefs/index.ts";
import { bytesSource, malformed, type ByteSource } from "./bytes.ts";
import { parseBlobTable, type BlobEntry } from "./blob-table.ts";
import {
  chunkKey,
  parseChunkFormat,
  parseChunkTable,
  parsePrefetchTable,
  readChunkIndexes,
  type ChunkFormat,
  type ChunkIndex,
  type ChunkTableEntry,
} from "./chunk.ts";
import { readDir, readSymlink, type Dirent } from "./dir.ts";
import { isDir, parseInode, type Inode } from "./inode.ts";
import { parseDeviceTable, parseExtSuperblock, parseSuperblock, type DeviceSlot, type ExtSuperblock, type Superblock } from "./superblock.ts";
import { readXattrs, type Xattr } from "./xattr.ts";

/** An opened RAFS v6 bootstrap. Holds what it parsed at open (and one index, built on first use). */
export class RafsImage {
  /** Built on first use: a mount never needs it, and it costs a string key per chunk. */
  private chunkTableIndex: ReadonlyMap<string, ChunkTableEntry> | undefined;

  private constructor(
    /** The bootstrap bytes. */
    readonly src: ByteSource,
    readonly superblock: Superblock,
    readonly ext: ExtSuperblock,
    readonly devices: readonly DeviceSlot[],
    readonly blobs: readonly BlobEntry[],
    readonly chunkTable: readonly ChunkTableEntry[],
    /** nids listed in the prefetch table. */
    readonly prefetch: readonly number[],
  ) {}

  /**
   * Parses and validates the fixed structures of a bootstrap.
   *
   * Throws InvalidArgument (naming field and offset) when the superblock, extended superblock,
   * device table, blob table, chunk table or prefetch table is malformed, when the image is
   * not RAFS v6 (no RAFS compat bit), when `extra_devices` is non-zero and differs from the
   * blob count or a device tag differs from its blob id, or when the root nid is not a directory.
   */
  static open(input: ByteSource | Uint8Array): RafsImage {
    const src = input instanceof Uint8Array ? bytesSource(input) : input;
    const sb = parseSuperblock(src);
    if (!sb.isRafs) throw malformed("superblock.feature_compat", 1024 + 8, `0x${sb.featureCompat.toString(16)} lacks the RAFS v6 bit 0x40000000`);
    if (sb.blockSize === 4096 && src.size % 4096 !== 0) throw malformed("bootstrap.size", 0, `${src.size} is not a multiple of the block size`);
    const ext = parseExtSuperblock(src);
    const devices = parseDeviceTable(src, sb);
    const blobs = parseBlobTable(src, ext);
    if (devices.length > 0) {
      if (devices.length !== blobs.length) throw malformed("superblock.extra_devices", 1024 + 86, `${devices.length} devices but ${blobs.length} blobs`);
      devices.forEach((d, i) => {
        if (d.tag !== blobs[i]?.blobId) throw malformed(`device_slot[${i}].tag`, sb.devtSlotoff * 128 + i * 128, `${d.tag} ≠ blob id ${blobs[i]?.blobId}`);
      });
    }
    const image = new RafsImage(src, sb, ext, devices, blobs, parseChunkTable(src, ext, blobs.length), parsePrefetchTable(src, ext));
    const root = image.inode(sb.rootNid);
    if (!isDir(root.mode)) throw malformed("superblock.root_nid", 1024 + 14, `nid ${sb.rootNid} is not a directory`);
    return image;
  }

  /** Reads inode `nid` (see {@link parseInode} for failure modes). */
  inode(nid: number): Inode {
    return parseInode(this.src, this.superblock, nid);
  }

  /** The root directory inode. */
  root(): Inode {
    return this.inode(this.superblock.rootNid);
  }

  /** Entries of a directory including `.` and `..` (see {@link readDir}). */
  readDir(inode: Inode): Dirent[] {
    return readDir(this.src, this.superblock, inode);
  }

  /** Target of a symlink (see {@link readSymlink}). */
  readSymlink(inode: Inode): string {
    return readSymlink(this.src, this.superblock, inode);
  }

  /** Extended attributes of an inode (see {@link readXattrs}). */
  xattrs(inode: Inode): Xattr[] {
    return readXattrs(this.src, this.superblock, inode);
  }

  /** Chunk format of a chunk-based regular file (see {@link parseChunkFormat}). */
  chunkFormat(inode: Inode): ChunkFormat {
    return parseChunkFormat(this.superblock, inode);
  }

  /** Chunk indexes of a chunk-based regular file (see {@link readChunkIndexes}). */
  chunks(inode: Inode): ChunkIndex[] {
    return readChunkIndexes(this.src, this.superblock, this.ext, inode, this.blobs.length);
  }

  /** The chunk table entry for a chunk index, matched by (blob, ci index, uncompressed offset). */
  chunkTableEntry(c: ChunkIndex): ChunkTableEntry | undefined {
    this.chunkTableIndex ??= new Map(this.chunkTable.map((e) => [chunkKey(e.blobIndex, e.ciIndex, e.uncompressedOffset), e]));
    return this.chunkTableIndex.get(chunkKey(c.blobIndex, c.ciIndex, c.uncompressedOffset));
  }

  /**
   * Resolves an absolute path (`/a/b`) component by component from the root. Symlinks are not
   * followed. Throws NotFound naming the path when a component is missing or a parent is not a
   * directory; InvalidArgument when the path is not absolute or metadata is malformed.
   */
  lookup(path: string): Inode {
    if (!path.startsWith("/")) throw malformed("path", 0, `${path} is not absolute`);
    let cur = this.root();
    for (const part of path.split("/").filter((p) => p !== "" && p !== ".")) {
      if (!isDir(cur.mode)) throw notFound(`rafs: ${path}: a parent of ${part} is not a directory`);
      const hit = this.readDir(cur).find((d) => d.name === part);
      if (!hit) throw notFound(`rafs: ${path}: no entry ${part}`);
      cur = this.inode(hit.nid);
    }
    return cur;
  }
}
