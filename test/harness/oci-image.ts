// Pushes a one-layer OCI image made from a directory, for converter and data-plane tests.
import { readFileSync } from "node:fs";
import type { RegistryClient } from "../../src/registry/index.ts";
import { run } from "./process.ts";

const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
const enc = new TextEncoder();

/**
 * Tars `tree` reproducibly (GNU tar, sorted, mtime 0, owner 0), gzips it (`pigz -n`) and pushes
 * layer, config and manifest as `repo:tag`. `lieAboutDiffId` writes a wrong diff_id into the
 * config. `work` is a scratch path prefix for the tar file. Returns the layer digest.
 */
export async function pushDirImage(c: RegistryClient, repo: string, tag: string, tree: string, work: string, lieAboutDiffId = false): Promise<string> {
  const tar = `${work}.tar`;
  const t = await run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", tree, "-cf", tar, "."]);
  if (t.code !== 0) throw new Error(`tar: ${t.stderr}`);
  const raw = new Uint8Array(readFileSync(tar));
  const z = await run(["pigz", "-n", "-f", tar]);
  if (z.code !== 0) throw new Error(`pigz: ${z.stderr}`);
  const layer = new Uint8Array(readFileSync(`${tar}.gz`));
  await c.pushBlob(repo, sha(layer), layer);
  const diffId = lieAboutDiffId ? `sha256:${"0".repeat(64)}` : sha(raw);
  const config = enc.encode(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [diffId] } }));
  await c.pushBlob(repo, sha(config), config);
  const manifest = enc.encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(layer), size: layer.length }],
    }),
  );
  await c.putManifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", manifest);
  return sha(layer);
}

/** `n` bytes of incompressible, reproducible noise (xorshift32). */
export function noise(n: number, seed = 2463534242): Uint8Array {
  const w = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
  return new Uint8Array(w.buffer, 0, n);
}
