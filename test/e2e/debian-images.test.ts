// The Debian test images (test/harness/debian-images.ts): layer 1 then layer 2, applied the way
// containerd applies layers, must give exactly the full mmdebstrap tree — compared path by path
// with tree-compare — and the image pushes as a two-layer OCI image. The layer differ is also
// checked on small trees with every kind of change. Root only (mmdebstrap --mode=root, owners,
// devices). A cold cache builds the python image first, which takes minutes.
import { beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "../../src/registry/index.ts";
import { useCleanup } from "../harness/cleanup.ts";
import { type DebianImage, debianImage, debianTreeKey, pushDebianImage } from "../harness/debian-images.ts";
import { applyLayers, listTar, writeDiffLayer, writeTreeLayer } from "../harness/layer-tar.ts";
import { run } from "../harness/process.ts";
import { startRegistry } from "../harness/registry.ts";
import { compareManifests, compareTrees, sha256File, type TreeManifest, treeManifest } from "../support/tree-compare.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/debian-images.test.ts needs root (mmdebstrap --mode=root); run it as root as CI does");

function sh(...cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}`);
}

describe.skipIf(!isRoot)("layer differ and applier on small trees", () => {
  const cleanup = useCleanup();

  test("removed, added, changed, type-changed paths and hard links survive lower + diff", async () => {
    const dir = cleanup.tempDir("rafsnap-layerdiff-");
    const lower = join(dir, "lower");
    const upper = join(dir, "upper");
    for (const root of [lower, upper]) {
      mkdirSync(join(root, "a"), { recursive: true });
      writeFileSync(join(root, "a/same"), "unchanged\n");
      writeFileSync(join(root, "hl1"), "linked\n");
      linkSync(join(root, "hl1"), join(root, "hl2"));
      writeFileSync(join(root, "tool"), "#!/bin/sh\n");
      chmodSync(join(root, "tool"), 0o755);
      writeFileSync(join(root, "owned"), "x");
      symlinkSync("a/same", join(root, "link"));
    }
    // Lower only: a file and a whole directory that go away, a file and a dir that change type.
    writeFileSync(join(lower, "a/gone"), "removed\n");
    mkdirSync(join(lower, "dir-gone/deeper"), { recursive: true });
    writeFileSync(join(lower, "dir-gone/deeper/x"), "x");
    writeFileSync(join(lower, "becomes-dir"), "file\n");
    mkdirSync(join(lower, "becomes-file/sub"), { recursive: true });
    writeFileSync(join(lower, "becomes-file/sub/y"), "y");
    // Upper only: new files, a third link, mode/owner/xattr/target changes.
    writeFileSync(join(upper, "a/new"), "added\n");
    mkdirSync(join(upper, "becomes-dir"));
    writeFileSync(join(upper, "becomes-dir/inside"), "inside\n");
    writeFileSync(join(upper, "becomes-file"), "file now\n");
    linkSync(join(upper, "hl1"), join(upper, "a/hl3"));
    chmodSync(join(upper, "tool"), 0o4755);
    chownSync(join(upper, "owned"), 1000, 1000);
    sh("setfattr", "-n", "user.rafsnap", "-v", "yes", join(upper, "a/same"));
    sh("ln", "-sfn", "hl1", join(upper, "link"));
    sh("find", lower, upper, "-exec", "touch", "-h", "-d", "@1000", "{}", "+");

    const epoch = 1704067200;
    await writeTreeLayer(lower, join(dir, "l1.tar"), epoch);
    const stats = await writeDiffLayer(lower, upper, join(dir, "l2.tar"), join(dir, "wh"), epoch);
    const members = await listTar(join(dir, "l2.tar"));
    expect(members).toContain("./a/.wh.gone");
    expect(members).toContain("./.wh.dir-gone");
    expect(members.some((m) => m.startsWith("./dir-gone/"))).toBe(false); // only the topmost removed path
    expect(members).toContain("./a/same"); // its xattr changed
    expect(members).toContain("./hl1"); // the group grew, so all of it is in the layer
    expect(members).toContain("./hl2");
    expect(members).toContain("./a/hl3");
    expect(members).not.toContain("./a/new/"); // a file, listed without a slash
    expect(stats.whiteouts).toBe(2);

    const merged = join(dir, "merged");
    mkdirSync(merged);
    await applyLayers(merged, [join(dir, "l1.tar"), join(dir, "l2.tar")]);
    expect(await compareTrees(upper, merged)).toEqual([]);
    // And the comparison is not vacuous: lower alone is reported different from upper.
    const lowerOnly = join(dir, "lower-only");
    mkdirSync(lowerOnly);
    await applyLayers(lowerOnly, [join(dir, "l1.tar")]);
    expect(await compareTrees(lower, lowerOnly)).toEqual([]);
    const diffs = await compareTrees(upper, lowerOnly);
    expect(diffs).toContain("/a/gone: unexpected file");
    expect(diffs).toContain("/becomes-dir: type expected dir, got file");
    expect(diffs).toContain("/tool: mode expected 4755, got 0755");
  });
});

describe.skipIf(!isRoot)("Debian images (mmdebstrap minbase + python3)", () => {
  const cleanup = useCleanup();
  let dir = "";
  let image: DebianImage;
  let source: TreeManifest;

  beforeAll(async () => {
    if (Bun.which("mmdebstrap") === null) throw new Error("mmdebstrap is missing: apt-get install mmdebstrap");
    dir = cleanup.tempDir("rafsnap-debimg-");
    image = await debianImage("python");
    source = await treeManifest(image.tree);
  }, 30 * 60_000);

  test("layer 1 then layer 2, with whiteouts, give exactly the full tree", async () => {
    const merged = join(dir, "merged");
    mkdirSync(merged);
    await applyLayers(merged, image.layers);
    expect(compareManifests(source, await treeManifest(merged))).toEqual([]);
    // The merged tree runs the image's Cmd.
    const r = await run(["chroot", merged, ...image.cmd], { env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" } });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(image.expect as string);
  }, 300_000);

  test("layer 1 alone is minbase, which the full tree differs from", async () => {
    const only = join(dir, "layer1");
    mkdirSync(only);
    await applyLayers(only, [image.layers[0]]);
    expect(await compareTrees(image.base, only)).toEqual([]);
    const diffs = compareManifests(source, await treeManifest(only));
    expect(diffs).toContain("/usr/bin/python3: missing (expected symlink)");
    expect(diffs.length).toBeGreaterThan(1000);
  }, 300_000);

  test("layer 2 holds the difference only, with parents, and keeps hard links", async () => {
    const members = await listTar(image.layers[1]);
    const set = new Set(members);
    expect(set.has("./usr/bin/python3")).toBe(true);
    expect(set.has("./usr/")).toBe(true);
    expect(set.has("./usr/bin/")).toBe(true);
    expect(set.has("./usr/bin/bash")).toBe(false); // unchanged since minbase
    expect(set.has("./usr/bin/perl")).toBe(false);
    expect(members.length).toBeLessThan(source.size);
    // Every upper hard-link group in layer 2 is wholly in it (tar stores one file and links).
    for (const [p, r] of source) {
      if (r.links && set.has(`.${p}`)) for (const other of r.links) expect(set.has(`.${other}`)).toBe(true);
    }
  });

  test("a second call is served by the cache with the same paths", async () => {
    const t0 = performance.now();
    const again = await debianImage("python");
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(again).toEqual(image);
    expect(debianTreeKey(["python3"])).toBe(image.key);
    expect(debianTreeKey(["b", "a", "b"])).toBe(debianTreeKey(["a", "b"]));
    expect(debianTreeKey(["a"])).not.toBe(debianTreeKey(["a", "b"]));
  });

  test("pushes as a two-layer OCI image: gzipped layers, diff_ids, Cmd", async () => {
    const registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const c = new RegistryClient(registry.host);
    const pushed = await pushDebianImage(c, "debian/python", "v1", image, join(dir, "push"));
    const manifest = JSON.parse(new TextDecoder().decode((await c.getManifest("debian/python", "v1")).bytes));
    expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(pushed.layers.map((l) => l.digest));
    expect(manifest.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
    const config = JSON.parse(new TextDecoder().decode(await c.readBlob("debian/python", manifest.config.digest)));
    const diffIds = await Promise.all(image.layers.map(async (t) => `sha256:${await sha256File(t)}`));
    expect(config.rootfs).toEqual({ type: "layers", diff_ids: diffIds });
    expect(config.config.Cmd).toEqual(image.cmd);
    expect(config.os).toBe("linux");
  }, 300_000);
});
