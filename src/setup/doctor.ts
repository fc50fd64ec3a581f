/**
 * `rafsnap doctor`: checks that this node can run rafsnap and that containerd is wired to it,
 * one line per check with how to fix what is missing.
 *
 * Required (a `fail` makes the report not ok): overlayfs, the rafsnap config, the root (exists
 * or creatable) with d_type, the socket path, and containerd's config naming rafsnap as a
 * proxy snapshotter. Informative (`warn` at worst): EROFS, file-backed EROFS and FUSE (needed
 * for nydus images only), whether rafsnap and containerd are running, and the CRI settings.
 */
import { DEFAULT_CONFIG_PATH, defaultConfig, loadConfig, type Config } from "../config/index.ts";
import { type CheckStatus, containerdChecks, type DoctorCheck, kernelChecks, rootChecks, socketChecks } from "./doctor-checks.ts";
import { DEFAULT_CONTAINERD_CONFIG } from "./setup-containerd.ts";

export type { CheckStatus, DoctorCheck } from "./doctor-checks.ts";

/** Options of {@link runDoctor}. */
export interface DoctorOptions {
  /** rafsnap's config.toml; when not `explicit`, a missing file means the built-in defaults. */
  configPath?: string;
  explicit: boolean;
  /** `--root` / `--address` overrides, as for `rafsnap serve`. */
  root?: string;
  address?: string;
  /** containerd's config.toml (default `/etc/containerd/config.toml`). */
  containerdConfig?: string;
  /** containerd's socket (default: `[grpc] address` of its config, else `/run/containerd/containerd.sock`). */
  containerdAddress?: string;
}

/** The whole report. */
export interface DoctorReport {
  /** False when some check has status `fail`. */
  ok: boolean;
  checks: DoctorCheck[];
}

/**
 * Runs every check (see the module doc). Never throws for what it finds: a config that does
 * not load is a failed `config` check, and the other checks then use the built-in defaults
 * with the `--root`/`--address` overrides.
 */
export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const flags = { root: o.root, address: o.address };
  const configPath = o.configPath ?? DEFAULT_CONFIG_PATH;
  let config: Config;
  try {
    const loaded = await loadConfig({ configPath, explicit: o.explicit, flags });
    config = loaded.config;
    const from = loaded.source ? `config ${loaded.source} loads` : `no ${configPath}: built-in defaults`;
    if (loaded.warnings.length) {
      checks.push({
        id: "config",
        status: "warn",
        required: true,
        message: `${from}, with warnings: ${loaded.warnings.join("; ")}`,
        fix: "remove or correct the keys named",
      });
    } else checks.push({ id: "config", status: "ok", required: true, message: from });
  } catch (e) {
    checks.push({
      id: "config",
      status: "fail",
      required: true,
      message: e instanceof Error ? e.message : String(e),
      fix: `fix ${configPath} (rafsnap config prints the effective configuration)`,
    });
    // Bad flag values fail here too: then the plain defaults.
    config = await loadConfig({ explicit: false, flags }).then(
      (r) => r.config,
      () => defaultConfig(),
    );
  }
  checks.push(...(await rootChecks(config.root)));
  checks.push(...(await socketChecks(config.address)));
  checks.push(...(await kernelChecks()));
  checks.push(
    ...(await containerdChecks({
      configPath: o.containerdConfig ?? DEFAULT_CONTAINERD_CONFIG,
      address: o.containerdAddress,
      snapshotterAddress: config.address,
    })),
  );
  return { ok: checks.every((c) => c.status !== "fail"), checks };
}

const LABEL: Record<CheckStatus, string> = { ok: "ok  ", warn: "warn", fail: "FAIL" };

/** The report as text: one line per check (`ok`/`warn`/`FAIL`, id, what, fix), then a summary line. */
export function formatReport(r: DoctorReport): string {
  const width = Math.max(...r.checks.map((c) => c.id.length));
  const lines = r.checks.map((c) => `${LABEL[c.status]}  ${c.id.padEnd(width)}  ${c.message}${c.fix && c.status !== "ok" ? ` — fix: ${c.fix}` : ""}`);
  const count = (s: CheckStatus) => r.checks.filter((c) => c.status === s).length;
  lines.push(`${count("ok")} ok, ${count("warn")} warnings, ${count("fail")} failed${r.ok ? "" : " (required checks failed)"}`);
  return `${lines.join("\n")}\n`;
}
