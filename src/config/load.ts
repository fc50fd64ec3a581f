/**
 * Loading order: built-in defaults ← config.toml ← command-line flags, then validation
 * (docs/compat.md §1.1).
 */

import { readFile } from "node:fs/promises";
import { invalidArgument, notFound } from "../errdefs/index.ts";
import { isPlainObject } from "./_checks.ts";
import { parseConfig, type ParseResult } from "./schema.ts";
import defaultToml from "./default.toml" with { type: "text" };

/**
 * The shipped, commented default config file (`src/config/default.toml`, embedded in the
 * compiled binary). It parses to exactly the built-in defaults. Printed by
 * `rafsnap config default`.
 */
export const DEFAULT_CONFIG_TOML: string = defaultToml as string;

/** Where the Go snapshotter's packaging installs config.toml. */
export const DEFAULT_CONFIG_PATH = "/etc/containerd-nydus/config.toml";

/**
 * The `containerd-nydus-grpc` flags that override config keys (docs/compat.md §1.3).
 * A flag left `undefined` or set to `""` does not override; `logToStdout` applies whenever
 * it is defined (the Go flag applies only when given on the command line).
 */
export interface Flags {
  /** `--root` → `root` */
  root?: string;
  /** `--address` → `address` */
  address?: string;
  /** `--nydus-image` → `daemon.nydusimage_path` */
  nydusImage?: string;
  /** `--nydusd` → `daemon.nydusd_path` */
  nydusd?: string;
  /** `--nydusd-config` (alias `--config-path`) → `daemon.nydusd_config` */
  nydusdConfig?: string;
  /** `--nydus-overlayfs-path` → `snapshot.nydus_overlayfs_path` */
  nydusOverlayfsPath?: string;
  /** `--daemon-mode` → `daemon_mode` */
  daemonMode?: string;
  /** `--fs-driver` → `daemon.fs_driver` */
  fsDriver?: string;
  /** `--log-level` → `log.level` */
  logLevel?: string;
  /** `--log-to-stdout` → `log.log_to_stdout` */
  logToStdout?: boolean;
}

/** Flag → (key path, flag name as typed on the command line). */
const FLAG_KEYS: Readonly<Record<keyof Flags, readonly [path: readonly string[], flag: string]>> = {
  root: [["root"], "--root"],
  address: [["address"], "--address"],
  nydusImage: [["daemon", "nydusimage_path"], "--nydus-image"],
  nydusd: [["daemon", "nydusd_path"], "--nydusd"],
  nydusdConfig: [["daemon", "nydusd_config"], "--nydusd-config"],
  nydusOverlayfsPath: [["snapshot", "nydus_overlayfs_path"], "--nydus-overlayfs-path"],
  daemonMode: [["daemon_mode"], "--daemon-mode"],
  fsDriver: [["daemon", "fs_driver"], "--fs-driver"],
  logLevel: [["log", "level"], "--log-level"],
  logToStdout: [["log", "log_to_stdout"], "--log-to-stdout"],
};

/** Result of {@link applyFlags}. */
export interface FlaggedDocument {
  /** A copy of the document with flag values written in (the input is not modified). */
  raw: Record<string, unknown>;
  /** Key paths set by flags, mapped to the flag name, for `ParseOptions.overrides`. */
  overrides: Record<string, string>;
}

/**
 * Writes flag values into a raw config document, the way Go's `ParseParameters` overwrites
 * the loaded file. Tables along the way are copied, not mutated. If a section is present but
 * is not a table (e.g. `daemon = 1`), the flag is not applied there and `parseConfig` reports
 * the section's type error. Never throws; values are validated by `parseConfig`.
 */
export function applyFlags(raw: Readonly<Record<string, unknown>>, flags: Flags): FlaggedDocument {
  const doc: Record<string, unknown> = { ...raw };
  const overrides: Record<string, string> = {};
  for (const [name, [path, flag]] of Object.entries(FLAG_KEYS) as [keyof Flags, (typeof FLAG_KEYS)[keyof Flags]][]) {
    const v = flags[name];
    if (v === undefined || v === "") continue;
    let table = doc;
    let reachable = true;
    for (const section of path.slice(0, -1)) {
      const next = table[section];
      if (next === undefined) table[section] = {};
      else if (isPlainObject(next)) table[section] = { ...next };
      else {
        reachable = false;
        break;
      }
      table = table[section] as Record<string, unknown>;
    }
    if (!reachable) continue;
    table[path[path.length - 1] as string] = v;
    overrides[path.join(".")] = flag;
  }
  return { raw: doc, overrides };
}

/**
 * Parses TOML text with `Bun.TOML.parse`.
 *
 * @throws RafsnapError of kind InvalidArgument naming `source` and carrying Bun's parse
 *   message when the text is not valid TOML.
 */
export function decodeToml(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = Bun.TOML.parse(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw invalidArgument(`config file ${source} is not valid TOML: ${msg}`, err);
  }
  if (!isPlainObject(doc)) throw invalidArgument(`config file ${source} is not a TOML document`);
  return doc;
}

/** Options of {@link loadConfig}. */
export interface LoadOptions {
  /** Path of config.toml (`--config`). When absent, only the built-in defaults and flags apply. */
  configPath?: string;
  /**
   * True when the user named `configPath` (so it must exist). When false, a missing file at
   * `configPath` (typically {@link DEFAULT_CONFIG_PATH}) falls back to the defaults.
   */
  explicit: boolean;
  flags: Flags;
}

/** Result of {@link loadConfig}. */
export interface LoadedConfig extends ParseResult {
  /** The file that was read, or `null` when only the built-in defaults were used. */
  source: string | null;
}

/**
 * Builds the effective configuration: built-in defaults, then config.toml (if any), then
 * `flags`, then validation by `parseConfig`.
 *
 * @throws RafsnapError of kind NotFound when `explicit` is set and `configPath` is missing
 *   (or `explicit` is set without a path: InvalidArgument).
 * @throws RafsnapError of kind InvalidArgument when the file cannot be read, is not valid
 *   TOML (the message names the file and carries Bun's parse error), or fails validation
 *   (all problems listed, one per line; keys set by flags name the flag).
 */
export async function loadConfig(opts: LoadOptions): Promise<LoadedConfig> {
  const { configPath, explicit, flags } = opts;
  if (explicit && !configPath) throw invalidArgument("config file path is empty");
  let raw: Record<string, unknown> = {};
  let source: string | null = null;
  if (configPath) {
    let text: string | undefined;
    try {
      text = await readFile(configPath, "utf8");
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== "ENOENT") {
        const msg = err instanceof Error ? err.message : String(err);
        throw invalidArgument(`cannot read config file ${configPath}: ${msg}`, err);
      }
      if (explicit) throw notFound(`config file ${configPath} does not exist`, err);
    }
    if (text !== undefined) {
      raw = decodeToml(text, configPath);
      source = configPath;
    }
  }
  const { raw: doc, overrides } = applyFlags(raw, flags);
  const result = parseConfig(doc, { source: source ?? undefined, overrides });
  return { ...result, source };
}
