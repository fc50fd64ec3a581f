// Unpacking a nydus image through the snapshots API the way containerd's CRI unpacker does
// (docs/compat.md §2–3): data layers are Prepared with their labels and answered AlreadyExists,
// the bootstrap layer is Prepared, filled and Committed. The bootstrap layer's contents come
// from a callback, so tests can unpack the real tar or shape a hostile one.
import { Database } from "bun:sqlite";
import { expect } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { RegistryClient } from "../../src/registry/index.ts";
import { Label } from "../../src/snapshot/labels.ts";
import type { Cleanup } from "../harness/cleanup.ts";
import { BUILD_IMAGES } from "../harness/images.ts";
import { isAlive, run, stopPid } from "../harness/process.ts";
import type { Registry } from "../harness/registry.ts";
import { requireBinary } from "./binary.ts";
import { codeOf } from "./failure.ts";
import { rafsnapCli, type RafsnapServer, startRafsnap } from "./rafsnap.ts";
import type { SnapshotsClient } from "./snapshots-client.ts";

/** Labels the unpacker sends, by their short names in these tests. */
export const UnpackLabel = {
  ref: Label.TargetSnapshotRef,
  imageRef: Label.CRIImageRef,
  layerDigest: Label.CRILayerDigest,
  blob: Label.NydusDataLayer,
  boot: Label.NydusMetaLayer,
} as const;

/** One layer of the image's manifest. */
export interface UnpackLayer {
  digest: string;
  annotations: Record<string, string>;
}

/**
 * Unpacks `layers` as chains `<prefix>-chain-<i>`; `fillBoot(upper)` writes the bootstrap
 * layer's files into its upper directory. `imageRef` (omitted: no image-ref label) is what
 * the CRI label carries. Returns the top chain name.
 */
export async function unpackNydus(
  c: SnapshotsClient,
  layers: UnpackLayer[],
  opts: { prefix: string; imageRef?: string; fillBoot: (upper: string) => Promise<void> },
): Promise<string> {
  let parent = "";
  for (const [i, l] of layers.entries()) {
    const name = `${opts.prefix}-chain-${i}`;
    const labels: Record<string, string> = { [UnpackLabel.ref]: name, [UnpackLabel.layerDigest]: l.digest, ...l.annotations };
    if (opts.imageRef !== undefined) labels[UnpackLabel.imageRef] = opts.imageRef;
    if (UnpackLabel.blob in l.annotations) {
      const r = await codeOf(c.prepare({ key: `${opts.prefix}-extract-${i}`, parent, labels }));
      expect(r.code).toBe(Code.AlreadyExists);
      expect(r.message).toContain(name);
    } else {
      const res = await c.prepare({ key: `${opts.prefix}-extract-${i}`, parent, labels });
      const m = res.mounts[0];
      const upper = m?.type === "bind" ? m.source : (m?.options.find((o) => o.startsWith("upperdir="))?.slice(9) as string);
      await opts.fillBoot(upper);
      await c.commit({ name, key: `${opts.prefix}-extract-${i}`, labels });
    }
    expect((await c.stat({ key: name })).info?.kind).toBe(3); // committed
    parent = name;
  }
  return parent;
}

/**
 * Unpacks `img` as containerd's CRI unpacker does (chain `<prefix>-chain-<i>`, the bootstrap
 * layer filled from its tar.gz) and opens the view `<prefix>-view` on it, which starts its
 * daemon. Returns the top layer's name and the view's first lowerdir (the image's mount).
 */
export async function viewNydusImage(c: SnapshotsClient, img: NydusTestImage, prefix: string): Promise<{ top: string; lower: string }> {
  const top = await unpackNydus(c, img.layers, {
    prefix,
    imageRef: img.image,
    fillBoot: async (upper) => {
      expect((await run(["tar", "-xzf", img.bootTgz, "-C", upper])).code).toBe(0);
    },
  });
  const view = await c.view({ key: `${prefix}-view`, parent: top });
  const lower = (view.mounts[0]?.options.find((o) => o.startsWith("lowerdir=")) ?? "").slice(9).split(":")[0] as string;
  return { top, lower };
}

/** The `multi` test image converted to nydus in a registry, ready to unpack. */
export interface NydusTestImage {
  /** `<registry>/multi:nydus`. */
  image: string;
  layers: UnpackLayer[];
  /** The bootstrap layer's tar.gz, fetched to a file. */
  bootTgz: string;
}

/**
 * Builds the test images into `reg` (test/images/build-image.sh), converts `multi:v1` to
 * `multi:nydus` with `rafsnap convert`, and fetches its layer list and bootstrap layer into
 * `dir`. Throws with the tool's stderr when a step fails.
 */
export async function prepareNydusImage(dir: string, reg: Registry): Promise<NydusTestImage> {
  const b = await run(["bash", BUILD_IMAGES, join(dir, "img"), reg.host], { timeoutMs: 60_000 });
  if (b.code !== 0) throw new Error(b.stderr);
  const image = `${reg.host}/multi:nydus`;
  const conv = await rafsnapCli(["convert", "--source", `${reg.host}/multi:v1`, "--target", image]);
  if (conv.code !== 0) throw new Error(conv.stderr);
  const c = new RegistryClient(reg.host);
  const m = JSON.parse(new TextDecoder().decode((await c.getManifest("multi", "nydus")).bytes)) as { layers: UnpackLayer[] };
  const layers = m.layers.map((l) => ({ digest: l.digest, annotations: l.annotations ?? {} }));
  const bootTgz = join(dir, "boot.tgz");
  writeFileSync(bootTgz, await c.readBlob("multi", layers.at(-1)?.digest as string));
  return { image, layers, bootTgz };
}

/**
 * Starts `rafsnap serve` in `<dir>/<name>` with `toml` as its config (and a `nydusd` link to
 * the compiled binary as `nydusd_path`; `daemonToml` adds keys to that `[daemon]` table),
 * registered with `cleanup`; the daemons it records are stopped after it (they outlive it by
 * design).
 */
export async function serveNydus(cleanup: Cleanup, dir: string, name: string, toml: string, daemonToml = ""): Promise<RafsnapServer> {
  const d = join(dir, name);
  mkdirSync(d);
  symlinkSync(requireBinary(), join(d, "nydusd"));
  writeFileSync(join(d, "config.toml"), `version = 1\n${toml}\n[daemon]\nnydusd_path = ${JSON.stringify(join(d, "nydusd"))}\n${daemonToml}\n`);
  const s = await startRafsnap(d, { args: ["--config", join(d, "config.toml")] });
  cleanup.defer(`${name} daemons`, async () => {
    for (const pid of recordedDaemonPids(s.root)) if (isAlive(pid)) await stopPid(pid);
  });
  cleanup.add(name, s);
  return s;
}

/** The pids of the daemons rafsnap recorded in its database under `root` (read-only). */
export function recordedDaemonPids(root: string): number[] {
  const db = new Database(join(root, "rafsnap.db"), { readonly: true });
  try {
    return (db.query("SELECT pid FROM daemons").all() as { pid: number }[]).map((r) => r.pid);
  } finally {
    db.close();
  }
}
