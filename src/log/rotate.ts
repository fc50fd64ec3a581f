import { appendFileSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";

/** Rotation settings, as `[log]` has them (lumberjack's semantics). */
export interface Rotation {
  /** Rotate before a write would make the file larger than this many bytes; 0 = never. */
  maxBytes: number;
  /** Rotated files to keep; 0 = all. */
  maxBackups: number;
  /** Days to keep rotated files; 0 = forever. */
  maxAgeDays: number;
  /** Timestamps in backup names in local time (else UTC). */
  localTime: boolean;
  /** Gzip rotated files (`.gz`). */
  compress: boolean;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** `2006-01-02T15-04-05.000`, the timestamp lumberjack puts in backup names. */
export function backupStamp(d: Date, local: boolean): string {
  const [y, mo, da, h, mi, s, ms] = local
    ? [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()]
    : [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()];
  return `${y}-${pad(mo)}-${pad(da)}T${pad(h)}-${pad(mi)}-${pad(s)}.${pad(ms, 3)}`;
}

/**
 * An append-only log file (mode 0600) rotated like lumberjack (the Go snapshotter's logger):
 * before a line would grow the file past `maxBytes`, it is renamed to
 * `<name>-<timestamp><ext>` (gzipped to `…<ext>.gz` with `compress`), a new file is started,
 * and backups beyond `maxBackups` or older than `maxAgeDays` are deleted. Rotation failures
 * never lose the line: it is appended to the current file instead.
 */
export class RotatingFile {
  private size: number;

  constructor(
    readonly path: string,
    private readonly rot: Rotation,
    private readonly now: () => Date = () => new Date(),
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    closeSync(openSync(path, "a", 0o600));
    this.size = statSync(path).size;
  }

  /** Appends `line`, rotating first when it would not fit. */
  write(line: string): void {
    const n = Buffer.byteLength(line);
    if (this.rot.maxBytes > 0 && this.size > 0 && this.size + n > this.rot.maxBytes) {
      try {
        this.rotate();
      } catch {
        // keep writing to the current file
      }
    }
    appendFileSync(this.path, line, { mode: 0o600 });
    this.size += n;
  }

  private rotate(): void {
    const ext = extname(this.path);
    const stem = basename(this.path, ext);
    const dir = dirname(this.path);
    const backup = join(dir, `${stem}-${backupStamp(this.now(), this.rot.localTime)}${ext}`);
    renameSync(this.path, backup);
    closeSync(openSync(this.path, "a", 0o600));
    this.size = 0;
    if (this.rot.compress) {
      writeFileSync(`${backup}.gz`, Bun.gzipSync(readFileSync(backup)), { mode: 0o600 });
      rmSync(backup);
    }
    this.prune(dir);
  }

  /** Backups of this file, newest first. */
  backups(): string[] {
    const ext = extname(this.path);
    const stem = basename(this.path, ext);
    const re = new RegExp(
      `^${stem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-(\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}\\.\\d{3})${ext.replace(".", "\\.")}(\\.gz)?$`,
    );
    return readdirSync(dirname(this.path))
      .filter((n) => re.test(n))
      .sort()
      .reverse();
  }

  private prune(dir: string): void {
    const all = this.backups();
    const cutoff = this.rot.maxAgeDays > 0 ? this.now().getTime() - this.rot.maxAgeDays * 86_400_000 : 0;
    all.forEach((name, i) => {
      const tooMany = this.rot.maxBackups > 0 && i >= this.rot.maxBackups;
      const tooOld = cutoff > 0 && statSync(join(dir, name)).mtimeMs < cutoff;
      if (tooMany || tooOld) rmSync(join(dir, name), { force: true });
    });
  }
}
