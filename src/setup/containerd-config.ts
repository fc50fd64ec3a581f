/**
 * What `rafsnap setup containerd` changes in containerd's config.toml, as a pure function of
 * the file's text: the proxy plugin and, optionally, the CRI snapshotter settings, in the
 * table that matches the file's config `version` (docs/compat.md §11).
 *
 * Version 3 (containerd 2.x) pulls through the transfer service, for `ctr` and CRI alike. It
 * unpacks only into the (platform, snapshotter) pairs of
 * `[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]` — a list that replaces the
 * built-in overlayfs entry once present, so setup writes that entry too when it creates the
 * list — and hands a snapshotter the remote-snapshot labels only when its proxy plugin exports
 * `enable_remote_snapshot_annotations = "true"`. CRI's `disable_snapshot_annotations = false`
 * is not written for version 3: containerd 2.1 would fall back to its old client-side pull.
 */
import { internal, invalidArgument } from "../errdefs/index.ts";
import { formatPath } from "./toml-scan.ts";
import { appendArrayTable, setTableKeys, type TomlScalar, type TomlStyle, valueAt } from "./toml-edit.ts";

/** containerd config versions: 1 and 2 are read by containerd 1.x, 3 by containerd 2.x. */
export type ContainerdConfigVersion = 1 | 2 | 3;

/** The proxy plugin name rafsnap registers under (as the Go snapshotter's docs do). */
export const PROXY_PLUGIN_NAME = "nydus";

/** Where the CRI image settings live, per config version. */
export const CRI_TABLE: Readonly<Record<ContainerdConfigVersion, readonly string[]>> = {
  1: ["plugins", "cri", "containerd"],
  2: ["plugins", "io.containerd.grpc.v1.cri", "containerd"],
  3: ["plugins", "io.containerd.cri.v1.images"],
};

/** The transfer service's unpack list (config version 3). */
export const UNPACK_CONFIG_TABLE: readonly string[] = ["plugins", "io.containerd.transfer.v1.local", "unpack_config"];

/** The proxy plugin's exports table (config version 3) and the export remote snapshotters need. */
export const PROXY_EXPORTS: { table: readonly string[]; values: Readonly<Record<string, string>> } = {
  table: ["proxy_plugins", PROXY_PLUGIN_NAME, "exports"],
  values: { enable_remote_snapshot_annotations: "true" },
};

/** containerd's platform string for this machine (`linux/amd64`, `linux/arm64`). */
export function hostPlatform(arch: string = process.arch): string {
  return `linux/${arch === "x64" ? "amd64" : arch}`;
}

/**
 * The `unpack_config` elements setup adds to a version 3 document: containerd's built-in
 * (`platform`, overlayfs) entry when the list does not exist yet, and (`platform`, nydus)
 * when no element names nydus for a platform already.
 */
export function unpackEntries(doc: Record<string, unknown>, platform: string): Record<string, string>[] {
  const list = valueAt(doc, UNPACK_CONFIG_TABLE);
  const out: Record<string, string>[] = [];
  if (list === undefined) out.push({ platform, snapshotter: "overlayfs" });
  const has = Array.isArray(list) && list.some((e) => valueAt(e, ["snapshotter"]) === PROXY_PLUGIN_NAME && valueAt(e, ["platform"]) === platform);
  if (!has) out.push({ platform, snapshotter: PROXY_PLUGIN_NAME });
  return out;
}

/** The CRI plugin ids a `disabled_plugins` entry may use to turn CRI off, per version. */
const CRI_PLUGIN_IDS: Readonly<Record<ContainerdConfigVersion, readonly string[]>> = {
  1: ["cri", "io.containerd.grpc.v1.cri"],
  2: ["cri", "io.containerd.grpc.v1.cri"],
  3: ["io.containerd.cri.v1.images", "io.containerd.grpc.v1.cri"],
};

/** What to set. */
export interface WiringOptions {
  /** Unix socket rafsnap serves on (`[proxy_plugins.nydus] address`). */
  address: string;
  /** Also point CRI (Kubernetes) at the snapshotter. */
  cri: boolean;
  /** Version for a file that has no keys at all (a new or empty file). */
  newFileVersion: 2 | 3;
  /** Platform of the version 3 `unpack_config` entries; default {@link hostPlatform}. */
  platform?: string;
}

/** Result of {@link planContainerdConfig}. */
export interface WiringPlan {
  /** The edited text (=== the input when nothing had to change). */
  text: string;
  version: ContainerdConfigVersion;
  /** The tables that were edited, as written in headers. */
  tables: string[];
  /** Things the user should know (CRI disabled, version 1 file). */
  notes: string[];
}

/**
 * Parses containerd config text.
 *
 * @throws RafsnapError InvalidArgument naming `source` and carrying the parser's message.
 */
export function parseContainerdToml(text: string, source: string): Record<string, unknown> {
  try {
    return Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw invalidArgument(`${source} is not valid TOML: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

/**
 * The config version of a parsed containerd config. A file without `version` is version 1
 * for containerd (its `plugins.cri` naming).
 *
 * @throws RafsnapError InvalidArgument for a version other than 1, 2 or 3.
 */
export function configVersion(doc: Record<string, unknown>): ContainerdConfigVersion {
  const v = doc.version ?? 1;
  if (v !== 1 && v !== 2 && v !== 3) throw invalidArgument(`unsupported containerd config version ${JSON.stringify(v)} (rafsnap knows 1, 2 and 3)`);
  return v;
}

/** The key/values setup writes, table by table. */
export function wiringTables(version: ContainerdConfigVersion, o: Pick<WiringOptions, "address" | "cri">): [readonly string[], Record<string, TomlScalar>][] {
  const out: [readonly string[], Record<string, TomlScalar>][] = [[["proxy_plugins", PROXY_PLUGIN_NAME], { type: "snapshot", address: o.address }]];
  if (version === 3) out.push([PROXY_EXPORTS.table, PROXY_EXPORTS.values]);
  if (o.cri) {
    out.push([
      CRI_TABLE[version],
      version === 3
        ? { snapshotter: PROXY_PLUGIN_NAME }
        : { snapshotter: PROXY_PLUGIN_NAME, disable_snapshot_annotations: false, discard_unpacked_layers: false },
    ]);
  }
  return out;
}

/**
 * Computes the wired config text from `text` (the current file, "" for a missing one) and
 * checks the result: it must parse, hold the wanted values, and equal the original document
 * in every other key.
 *
 * @throws RafsnapError InvalidArgument when `text` is not valid TOML or has an unknown
 *   version; FailedPrecondition when a table to edit is written in a form a line edit cannot
 *   change safely (inline, dotted keys, array of tables); Internal when the edited text
 *   does not verify (a rafsnap bug; nothing is written then).
 */
export function planContainerdConfig(text: string, source: string, o: WiringOptions): WiringPlan {
  const original = parseContainerdToml(text, source);
  const notes: string[] = [];
  let out = text;
  let version: ContainerdConfigVersion;
  const expected = structuredClone(original);
  if (Object.keys(original).length === 0) {
    // Nothing to preserve: a new or empty file gets an explicit version.
    version = o.newFileVersion;
    const firstHeader = /^[ \t]*\[/m.exec(out);
    const at = firstHeader ? firstHeader.index : out.length;
    const sep = at > 0 && out[at - 1] !== "\n" ? "\n" : "";
    out = `${out.slice(0, at)}${sep}version = ${version}\n${firstHeader ? "\n" : ""}${out.slice(at)}`;
    expected.version = version;
  } else {
    version = configVersion(original);
    if (version === 1)
      notes.push(`${source} is a version 1 config (no "version" key); containerd 2.x needs version 3 — consider \`containerd config migrate\``);
  }
  const style: TomlStyle = { quote: version === 3 ? "'" : '"' };
  const tables: string[] = [];
  for (const [table, values] of wiringTables(version, o)) {
    const doc = parseContainerdToml(out, source);
    const next = setTableKeys(out, doc, table, values, style);
    if (next !== out) tables.push(formatPath(table, style.quote));
    out = next;
    setIn(expected, table, values);
  }
  if (version === 3) {
    for (const entry of unpackEntries(original, o.platform ?? hostPlatform())) {
      const next = appendArrayTable(out, parseContainerdToml(out, source), UNPACK_CONFIG_TABLE, entry, style);
      const header = `[${formatPath(UNPACK_CONFIG_TABLE, style.quote)}]`;
      if (next !== out && !tables.includes(header)) tables.push(header);
      out = next;
      const parent = UNPACK_CONFIG_TABLE.slice(0, -1);
      setIn(expected, parent, {});
      const holder = valueAt(expected, parent) as Record<string, unknown>;
      holder.unpack_config = [...((holder.unpack_config as unknown[] | undefined) ?? []), entry];
    }
  }
  if (o.cri) {
    const disabled = original.disabled_plugins;
    if (Array.isArray(disabled) && disabled.some((p) => CRI_PLUGIN_IDS[version].includes(p as string))) {
      notes.push(`the CRI plugin is listed in disabled_plugins; the CRI settings take effect only when it is enabled`);
    }
  }
  verify(out, source, expected);
  return { text: out, version, tables, notes };
}

/** Sets `values` in `table` of a plain-object tree, creating tables on the way. */
function setIn(doc: Record<string, unknown>, table: readonly string[], values: Record<string, TomlScalar>): void {
  let cur = doc;
  for (const p of table) {
    const next = cur[p];
    if (typeof next !== "object" || next === null || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  Object.assign(cur, values);
}

/** The edited text must parse to exactly the original document plus the wanted values. */
function verify(text: string, source: string, expected: Record<string, unknown>): void {
  let got: unknown;
  try {
    got = Bun.TOML.parse(text);
  } catch (err) {
    throw internal(
      `refusing to write ${source}: the edited file would not parse (${err instanceof Error ? err.message : String(err)}); please report this with the file`,
      err,
    );
  }
  if (!Bun.deepEquals(got, expected, true)) {
    throw internal(`refusing to write ${source}: the edited file would change keys other than the ones rafsnap sets; please report this with the file`);
  }
}

/** True when the parsed config already routes `address` through some snapshot proxy plugin; returns its name. */
export function proxyPluginFor(doc: Record<string, unknown>, address: string): string | undefined {
  const proxies = valueAt(doc, ["proxy_plugins"]);
  if (typeof proxies !== "object" || proxies === null) return undefined;
  for (const [name, p] of Object.entries(proxies as Record<string, unknown>)) {
    if (valueAt(p, ["type"]) === "snapshot" && valueAt(p, ["address"]) === address) return name;
  }
  return undefined;
}
