import { describe, expect, test } from "bun:test";
import { isKind } from "../errdefs/index.ts";
import { planContainerdConfig, type WiringOptions } from "./containerd-config.ts";
import { scanToml } from "./toml-scan.ts";

const opts: WiringOptions = { address: "/run/r.sock", cri: true, newFileVersion: 2, platform: "linux/amd64" };
const UNPACK_DEFAULT = { platform: "linux/amd64", snapshotter: "overlayfs" };
const UNPACK_NYDUS = { platform: "linux/amd64", snapshotter: "nydus" };
const V3_ADDED =
  "\n[proxy_plugins.nydus.exports]\n  enable_remote_snapshot_annotations = 'true'\n\n[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n  platform = 'linux/amd64'\n  snapshotter = 'overlayfs'\n\n[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n  platform = 'linux/amd64'\n  snapshotter = 'nydus'\n";
const plan = (text: string, o: Partial<WiringOptions> = {}) => planContainerdConfig(text, "c.toml", { ...opts, ...o });

function refused(text: string): string {
  try {
    plan(text);
  } catch (e) {
    expect(isKind(e, "failed-precondition")).toBe(true);
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("scanToml", () => {
  test("strings and arrays over several lines are not headers or keys", () => {
    const text = 'a = """\n[x]\nb = 1\n"""\nc = [\n  "[y]", # [z]\n  [1, 2],\n]\n[t] # c\nd = \'\'\'\n[u]\'\'\'\n';
    const e = scanToml(text);
    expect(e.map((x) => [x.kind, x.path.join("."), x.line])).toEqual([
      ["keyval", "a", 1],
      ["keyval", "c", 5],
      ["table", "t", 9],
      ["keyval", "d", 10],
    ]);
    expect(text.slice(e[1]?.valueStart, e[1]?.valueEnd)).toBe('[\n  "[y]", # [z]\n  [1, 2],\n]');
  });
  test("quoted header parts are decoded", () => {
    const e = scanToml(`[plugins."io.containerd.grpc.v1.cri" . containerd]\n[plugins.'io.containerd.cri.v1.images']\n["a\\"b"]\n`);
    expect(e.map((x) => x.path)).toEqual([["plugins", "io.containerd.grpc.v1.cri", "containerd"], ["plugins", "io.containerd.cri.v1.images"], ['a"b']]);
  });
});

describe("planContainerdConfig", () => {
  test("new file: version 2 or 3 as asked", () => {
    expect(plan("", { cri: false }).text).toBe('version = 2\n\n[proxy_plugins.nydus]\n  type = "snapshot"\n  address = "/run/r.sock"\n');
    const v3 = plan("", { newFileVersion: 3 });
    expect(v3.version).toBe(3);
    expect(Bun.TOML.parse(v3.text)).toEqual({
      version: 3,
      proxy_plugins: { nydus: { type: "snapshot", address: "/run/r.sock", exports: { enable_remote_snapshot_annotations: "true" } } },
      plugins: {
        "io.containerd.cri.v1.images": { snapshotter: "nydus" },
        "io.containerd.transfer.v1.local": { unpack_config: [UNPACK_DEFAULT, UNPACK_NYDUS] },
      },
    });
    expect(v3.tables).toContain("[plugins.'io.containerd.transfer.v1.local'.unpack_config]");
    expect(plan(v3.text, { newFileVersion: 3 }).text).toBe(v3.text);
  });
  test("a file with comments only gets a version after them", () => {
    const r = plan("# hello\n", { cri: false });
    expect(r.text.startsWith("# hello\nversion = 2\n")).toBe(true);
  });
  test("already wired: same text", () => {
    const t = 'version = 2\n[proxy_plugins.nydus]\ntype = "snapshot"\naddress = "/run/r.sock"\n';
    expect(plan(t, { cri: false }).text).toBe(t);
  });
  test("a value is replaced in place, keeping its comment and quoting", () => {
    const t = "version = 3\n[proxy_plugins.nydus]\n  type = 'snapshot'\n  address = '/old.sock'   # old\n";
    expect(plan(t, { cri: false }).text).toBe(`version = 3\n[proxy_plugins.nydus]\n  type = 'snapshot'\n  address = '/run/r.sock'   # old\n${V3_ADDED}`);
  });
  test("v3: an existing unpack_config list gets only the nydus entry, after its last element", () => {
    const t =
      "version = 3\n[plugins]\n  [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n    platform = 'linux/amd64'\n    snapshotter = 'overlayfs'\n  [plugins.'io.containerd.x']\n    a = 1\n";
    const r = plan(t, { cri: false });
    expect(r.text).toContain(
      "    snapshotter = 'overlayfs'\n\n    [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n      platform = 'linux/amd64'\n      snapshotter = 'nydus'\n  [plugins.'io.containerd.x']",
    );
    expect(
      (Bun.TOML.parse(r.text) as { plugins: Record<string, { unpack_config?: unknown }> }).plugins["io.containerd.transfer.v1.local"]?.unpack_config,
    ).toEqual([UNPACK_DEFAULT, UNPACK_NYDUS]);
    expect(plan(r.text, { cri: false }).text).toBe(r.text);
  });
  test("v3: an inline unpack_config is refused; an arm64 node gets its own platform", () => {
    expect(refused("version = 3\n[plugins.'io.containerd.transfer.v1.local']\nunpack_config = []\n")).toContain("unpack_config");
    expect(plan("", { newFileVersion: 3, platform: "linux/arm64" }).text).toContain("platform = 'linux/arm64'");
  });
  test("a last line without newline", () => {
    const t = 'version = 2\n[proxy_plugins.nydus]\ntype = "snapshot"';
    expect(plan(t, { cri: false }).text).toBe('version = 2\n[proxy_plugins.nydus]\ntype = "snapshot"\naddress = "/run/r.sock"\n');
  });
  test("a super-table defined only through sub-tables gets its own header", () => {
    const t = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\nruntime_type = "x"\n';
    const r = plan(t);
    expect(Bun.TOML.parse(r.text)).toMatchObject({
      plugins: { "io.containerd.grpc.v1.cri": { containerd: { snapshotter: "nydus", runtimes: { runc: { runtime_type: "x" } } } } },
    });
  });
  test("inline tables, dotted keys and arrays of tables are refused, naming the table", () => {
    expect(refused('version = 2\nproxy_plugins = { nydus = { type = "snapshot" } }\n')).toContain("[proxy_plugins.nydus]");
    expect(refused('version = 2\n[proxy_plugins]\nnydus.type = "snapshot"\n')).toContain("line 3");
    expect(refused('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\ncontainerd.snapshotter = "overlayfs"\n')).toContain(
      '[plugins."io.containerd.grpc.v1.cri".containerd]',
    );
    expect(refused('version = 2\n[[proxy_plugins.nydus]]\ntype = "snapshot"\n')).toContain("array of tables");
  });
  test("bad TOML and unknown versions are invalid arguments", () => {
    for (const t of ["[a\n", "version = 7\n"]) {
      try {
        plan(t);
        throw new Error("expected an error");
      } catch (e) {
        expect(isKind(e, "invalid-argument")).toBe(true);
      }
    }
  });
  test("v1 files: plugins.cri.containerd, with a note", () => {
    const r = plan('[plugins.cri.containerd]\nsnapshotter = "overlayfs"\n');
    expect(r.version).toBe(1);
    expect(r.notes.join()).toContain("version 1");
    expect(Bun.TOML.parse(r.text)).toMatchObject({ plugins: { cri: { containerd: { snapshotter: "nydus" } } } });
  });
  test("disabled CRI is noted", () => {
    expect(plan('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n').notes.join()).toContain("disabled_plugins");
  });
});
