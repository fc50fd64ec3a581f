// `rafsnap setup containerd` (compiled binary) on copies of real containerd configs: the
// default of the installed containerd 1.6 (generated here), a containerd 2.x (version 3)
// config, one already wired, one with comments and unrelated plugins, a version 1 one.
// Every result is parsed back and loaded by containerd itself (`containerd --config X config
// dump`): version 2 and 1 files by the installed 1.6, the version 3 one (the default of
// containerd 2.x, test/harness/containerd-versions.ts) by containerd 2.x.
import { describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostPlatform } from "../../src/setup/containerd-config.ts";
import { CONTAINERD_BIN } from "../harness/containerd.ts";
import { ensureContainerd2 } from "../harness/containerd-versions.ts";
import { run } from "../harness/process.ts";
import { rafsnapCli, withScratch } from "../support/rafsnap.ts";

const FIXTURES = join(import.meta.dir, "../fixtures/containerd");
const HAVE_CONTAINERD = existsSync(CONTAINERD_BIN);
const V2_CRI = ["plugins", "io.containerd.grpc.v1.cri", "containerd"];
const V3_CRI = ["plugins", "io.containerd.cri.v1.images"];
const UNPACK_PARENT = ["plugins", "io.containerd.transfer.v1.local"];
const CRI_VALUES = { snapshotter: "nydus", disable_snapshot_annotations: false, discard_unpacked_layers: false };

type Doc = Record<string, unknown>;
const parse = (path: string): Doc => Bun.TOML.parse(readFileSync(path, "utf8")) as Doc;
const get = (doc: unknown, path: string[]): unknown => path.reduce<unknown>((d, p) => (d as Doc | undefined)?.[p], doc);
const backups = (dir: string) => readdirSync(dir).filter((n) => n.includes(".rafsnap-bak."));

/** `old` with `values` written into `table`: what the edited file must parse to, exactly. */
function withValues(old: Doc, edits: [string[], Doc][]): Doc {
  const doc = structuredClone(old);
  for (const [table, values] of edits) {
    let cur = doc;
    for (const p of table) cur = (cur[p] ??= {}) as Doc;
    Object.assign(cur, values);
  }
  return doc;
}

/** containerd's own view of the file (it merges its defaults and migrates v1 names). */
async function containerdDump(config: string, bin = CONTAINERD_BIN): Promise<Doc> {
  const r = await run([bin, "--config", config, "config", "dump"], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`containerd config dump failed (${r.code}): ${r.stderr}`);
  return Bun.TOML.parse(r.stdout) as Doc;
}

function copyFixture(dir: string, name: string): string {
  const to = join(dir, "config.toml");
  copyFileSync(join(FIXTURES, name), to);
  return to;
}

describe.skipIf(!HAVE_CONTAINERD)("rafsnap setup containerd (compiled binary)", () => {
  test("containerd 1.6's default config (v2): proxy plugin and CRI added, mode kept, backup, then idempotent", async () => {
    await withScratch("setup-default", async ({ dir }) => {
      const gen = await run([CONTAINERD_BIN, "config", "default"]);
      expect(gen.code).toBe(0);
      const config = join(dir, "config.toml");
      writeFileSync(config, gen.stdout);
      chmodSync(config, 0o640);
      const before = parse(config);
      expect(before.version).toBe(2);
      const sock = join(dir, "r.sock");

      const r = await rafsnapCli(["setup", "containerd", "--config", config, "--address", sock, "--cri"]);
      expect(r.stderr).toContain("updated");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`+  [proxy_plugins.nydus]\n+    type = "snapshot"\n+    address = ${JSON.stringify(sock)}`);
      expect(r.stdout).toContain('-      snapshotter = "overlayfs"\n');
      expect(parse(config)).toEqual(
        withValues(before, [
          [["proxy_plugins", "nydus"], { type: "snapshot", address: sock }],
          [V2_CRI, CRI_VALUES],
        ]),
      );
      expect(statSync(config).mode & 0o777).toBe(0o640);
      const [bak] = backups(dir);
      expect(backups(dir)).toHaveLength(1);
      expect(readFileSync(join(dir, bak as string), "utf8")).toBe(gen.stdout);
      expect(statSync(join(dir, bak as string)).mode & 0o777).toBe(0o640);

      const dump = await containerdDump(config);
      expect(get(dump, ["proxy_plugins", "nydus"])).toEqual({ type: "snapshot", address: sock });
      expect(get(dump, V2_CRI)).toMatchObject(CRI_VALUES);

      const text = readFileSync(config, "utf8");
      const again = await rafsnapCli(["setup", "containerd", "--config", config, "--address", sock, "--cri"]);
      expect(again.code).toBe(0);
      expect(again.stdout).toBe("");
      expect(again.stderr).toContain("nothing changed");
      expect(readFileSync(config, "utf8")).toBe(text);
      expect(backups(dir)).toHaveLength(1);
    });
  });

  test("containerd 2.x's default config (v3), loaded back by containerd 2.x: proxy plugin with exports, CRI images snapshotter, transfer unpack_config", async () => {
    const ctd2 = await ensureContainerd2();
    await withScratch("setup-v3", async ({ dir }) => {
      const gen = await run([ctd2.containerd, "config", "default"]);
      expect(gen.code).toBe(0);
      const config = join(dir, "config.toml");
      writeFileSync(config, gen.stdout);
      const before = parse(config);
      expect(before.version).toBe(3);
      const r = await rafsnapCli(["setup", "containerd", "--config", config, "--cri"]);
      expect(r.code).toBe(0);
      const address = "/run/containerd-nydus/containerd-nydus-grpc.sock"; // rafsnap's default
      const platform = hostPlatform();
      const proxy = { type: "snapshot", address, exports: { enable_remote_snapshot_annotations: "true" } };
      const unpack = [
        { platform, snapshotter: "overlayfs" },
        { platform, snapshotter: "nydus" },
      ];
      const wanted = withValues(before, [
        [["proxy_plugins", "nydus"], proxy],
        [V3_CRI, { snapshotter: "nydus" }],
        [UNPACK_PARENT, { unpack_config: unpack }],
      ]);
      expect(parse(config)).toEqual(wanted);
      // Values keep the file's quoting.
      expect(r.stdout).toContain("-    snapshotter = 'overlayfs'\n");
      expect(r.stdout).toContain("+    snapshotter = 'nydus'\n");

      // containerd 2.x itself loads it and reports our settings (merged with its defaults).
      const dump = await containerdDump(config, ctd2.containerd);
      expect(get(dump, ["proxy_plugins", "nydus"])).toMatchObject(proxy);
      expect(get(dump, [...V3_CRI, "snapshotter"])).toBe("nydus");
      expect(get(dump, [...UNPACK_PARENT, "unpack_config"])).toMatchObject(unpack);

      const again = await rafsnapCli(["setup", "containerd", "--config", config, "--cri"]);
      expect(again.code).toBe(0);
      expect(again.stderr).toContain("nothing changed");

      // rafsnap doctor reads the version 3 wiring; without the exports it warns.
      const rafsnapConfig = join(dir, "rafsnap.toml");
      writeFileSync(rafsnapConfig, "");
      const doctor = async () => {
        const d = await rafsnapCli(["doctor", "--json", "--config", rafsnapConfig, "--root", join(dir, "root"), "--containerd-config", config]);
        const checks = (JSON.parse(d.stdout) as { checks: { id: string; status: string }[] }).checks;
        return Object.fromEntries(checks.filter((c) => c.id.startsWith("containerd-")).map((c) => [c.id, c.status]));
      };
      expect(await doctor()).toEqual({ "containerd-wiring": "ok", "containerd-transfer": "ok", "containerd-cri": "ok" });
      writeFileSync(
        config,
        readFileSync(config, "utf8").replace("enable_remote_snapshot_annotations = 'true'", "enable_remote_snapshot_annotations = 'false'"),
      );
      expect(await doctor()).toEqual({ "containerd-wiring": "ok", "containerd-transfer": "warn", "containerd-cri": "warn" });
    });
  }, 600_000); // containerd 2.x is downloaded on first use

  test("already wired: exit 0, nothing written, no backup", async () => {
    await withScratch("setup-wired", async ({ dir }) => {
      const config = copyFixture(dir, "wired-v2.toml");
      const text = readFileSync(config, "utf8");
      const mtime = statSync(config).mtimeMs;
      const r = await rafsnapCli(["setup", "containerd", "--config", config, "--cri"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain("nothing changed");
      expect(readFileSync(config, "utf8")).toBe(text);
      expect(statSync(config).mtimeMs).toBe(mtime);
      expect(readdirSync(dir)).toEqual(["config.toml"]);
      const dump = await containerdDump(config);
      expect(get(dump, ["proxy_plugins", "nydus", "address"])).toBe("/run/containerd-nydus/containerd-nydus-grpc.sock");
    });
  });

  test("comments, formatting and unrelated tables stay byte-identical", async () => {
    await withScratch("setup-comments", async ({ dir }) => {
      const config = copyFixture(dir, "commented-v2.toml");
      const original = readFileSync(config, "utf8");
      const before = parse(config);
      const r = await rafsnapCli(["setup", "containerd", "--config", config, "--cri", "--address", "/run/rafsnap.sock"]);
      expect(r.code).toBe(0);
      const after = readFileSync(config, "utf8");
      // The only line removed is the replaced value (its comment kept); every other original
      // line is still there, in order.
      expect(r.stdout.split("\n").filter((l) => l.startsWith("-") && !l.startsWith("---"))).toEqual(['-      snapshotter = "overlayfs" # keep this comment']);
      expect(after).toContain('      snapshotter = "nydus" # keep this comment\n');
      const kept = original.split("\n").filter((l) => !l.includes('snapshotter = "overlayfs"'));
      let k = 0;
      for (const line of after.split("\n")) if (line === kept[k]) k++;
      expect(k).toBe(kept.length);
      for (const block of [
        original.slice(0, original.indexOf("[debug]")),
        original.slice(
          original.indexOf('  [plugins."io.containerd.gc.v1.scheduler"]'),
          original.indexOf('    [plugins."io.containerd.grpc.v1.cri".containerd]'),
        ),
        original.slice(original.indexOf('  [plugins."io.containerd.snapshotter.v1.overlayfs"]')),
      ]) {
        // The stargz block and [timeouts] are in the last slice; our table goes between them.
        if (block.includes("[proxy_plugins.stargz]")) {
          const [head, tail] = block.split("# Timeouts stay last.");
          expect(after).toContain(head as string);
          expect(after.endsWith(`# Timeouts stay last.${tail}`)).toBe(true);
        } else expect(after).toContain(block);
      }
      expect(parse(config)).toEqual(
        withValues(before, [
          [["proxy_plugins", "nydus"], { type: "snapshot", address: "/run/rafsnap.sock" }],
          [V2_CRI, CRI_VALUES],
        ]),
      );
      const dump = await containerdDump(config);
      expect(get(dump, ["proxy_plugins", "nydus", "address"])).toBe("/run/rafsnap.sock");
      expect(get(dump, ["proxy_plugins", "stargz", "type"])).toBe("snapshot");
      expect(get(dump, V2_CRI)).toMatchObject(CRI_VALUES);
    });
  });

  test("a version 1 config is edited in plugins.cri.containerd, with a note", async () => {
    await withScratch("setup-v1", async ({ dir }) => {
      const config = copyFixture(dir, "v1.toml");
      const r = await rafsnapCli(["setup", "containerd", "--config", config, "--cri"]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain("version 1");
      expect(get(parse(config), ["plugins", "cri", "containerd", "snapshotter"])).toBe("nydus");
      // containerd 1.6 migrates v1 names to v2 on load.
      const dump = await containerdDump(config);
      expect(get(dump, V2_CRI)).toMatchObject(CRI_VALUES);
      expect(get(dump, ["proxy_plugins", "nydus", "type"])).toBe("snapshot");
    });
  });

  test("a missing config is created (v2 for the installed containerd 1.6), directory too", async () => {
    await withScratch("setup-new", async ({ dir }) => {
      const config = join(dir, "etc/containerd/config.toml");
      const r = await rafsnapCli(["setup", "containerd", "--config", config]);
      expect(r.code).toBe(0);
      expect(r.stdout).toStartWith(`--- /dev/null\n+++ ${config}\n`);
      expect(parse(config)).toEqual({
        version: 2,
        proxy_plugins: { nydus: { type: "snapshot", address: "/run/containerd-nydus/containerd-nydus-grpc.sock" } },
      });
      expect(statSync(config).mode & 0o777).toBe(0o644);
      expect(backups(join(dir, "etc/containerd"))).toEqual([]);
      expect(get(await containerdDump(config), ["proxy_plugins", "nydus", "type"])).toBe("snapshot");
    });
  });

  test("--dry-run prints the diff and writes nothing", async () => {
    await withScratch("setup-dry", async ({ dir }) => {
      const config = copyFixture(dir, "commented-v2.toml");
      const text = readFileSync(config, "utf8");
      const r = await rafsnapCli(["setup", "containerd", "--config", config, "--cri", "--dry-run"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("+  [proxy_plugins.nydus]");
      expect(r.stderr).toContain("not written");
      expect(readFileSync(config, "utf8")).toBe(text);
      expect(readdirSync(dir)).toEqual(["config.toml"]);
      const missing = join(dir, "new.toml");
      expect((await rafsnapCli(["setup", "containerd", "--config", missing, "--dry-run"])).code).toBe(0);
      expect(existsSync(missing)).toBe(false);
    });
  });

  test("bad TOML: clear error, exit 2, nothing written", async () => {
    await withScratch("setup-bad", async ({ dir }) => {
      const config = copyFixture(dir, "bad.toml");
      const text = readFileSync(config, "utf8");
      const r = await rafsnapCli(["setup", "containerd", "--config", config]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${config} is not valid TOML`);
      expect(readFileSync(config, "utf8")).toBe(text);
      expect(readdirSync(dir)).toEqual(["config.toml"]);
    });
  });

  test("an inline table is refused, naming it; nothing written", async () => {
    await withScratch("setup-inline", async ({ dir }) => {
      const config = copyFixture(dir, "inline.toml");
      const text = readFileSync(config, "utf8");
      const r = await rafsnapCli(["setup", "containerd", "--config", config]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("[proxy_plugins.nydus] is written inline");
      expect(readFileSync(config, "utf8")).toBe(text);
      expect(readdirSync(dir)).toEqual(["config.toml"]);
    });
  });
});
