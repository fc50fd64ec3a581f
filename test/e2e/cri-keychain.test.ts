// `[remote.auth] enable_cri_keychain` end to end: rafsnap serves the CRI ImageService on its
// socket and forwards it to the real containerd (CRI, snapshotter "nydus" = rafsnap); our CRI
// client plays the kubelet and pulls a nydus image from a private registry (basic auth)
// through rafsnap with credentials. containerd pulls with them, and rafsnap's daemon reads the
// image's data lazily with the same credentials, which it kept from the PullImage call. An
// image pulled without the proxy gets no credentials; no secret reaches a log. Root only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { Cleanup } from "../harness/cleanup.ts";
import { CONTAINERD_MAJORS } from "../harness/containerd-versions.ts";
import { type CriClients, criClients } from "../support/cri-client.ts";
import { BIG_BYTES, type NydusNode, startNydusNode } from "../support/nydus-node.ts";

const isRoot = process.getuid?.() === 0;
const USER = "carol";
const PASSWORD = "cri-s3cret-pw";

/** The instance config files (daemon configs) under `root`, with their text. */
function daemonConfigs(root: string): { path: string; text: string }[] {
  return (readdirSync(root, { recursive: true }) as string[])
    .filter((n) => n.endsWith("config.json") && !n.includes("cache"))
    .map((n) => ({ path: join(root, n), text: readFileSync(join(root, n), "utf8") }));
}

for (const containerd of CONTAINERD_MAJORS) {
  describe.skipIf(!isRoot)(`CRI keychain (containerd ${containerd}.x): the kubelet pulls through rafsnap with credentials`, () => {
    const cleanup = new Cleanup();
    let node: NydusNode;
    let priv: Registry;
    let kubelet: CriClients;
    let image = "";
    const linkDir = cleanup.tempDir("rafsnap-cri-keychain-");
    const upstream = join(linkDir, "containerd.sock");

    beforeAll(async () => {
      // containerd's socket is known only once it runs: rafsnap is pointed at a link made then.
      node = await startNydusNode({
        daemonMode: "dedicated",
        containerd,
        extraToml: `[remote.auth]\nenable_cri_keychain = true\nimage_service_address = ${JSON.stringify(upstream)}`,
      });
      cleanup.defer("node", () => node.stop());
      symlinkSync(node.ctd.address, upstream);
      // The node's images, served again privately (same storage, basic auth).
      const pdir = join(linkDir, "private");
      mkdirSync(pdir);
      symlinkSync(join(node.dir, "registry", "storage"), join(pdir, "storage"));
      priv = cleanup.add("private registry", await startRegistry(pdir, { htpasswd: { user: USER, password: PASSWORD } }));
      image = `${priv.host}/big:nydus`;
      kubelet = criClients(node.rafsnap.socket);
    }, 600_000);
    afterAll(() => cleanup.run());

    test("calls are forwarded; a pull without credentials fails with containerd's answer", async () => {
      const listed = await kubelet.image.listImages({});
      expect(listed.images.some((i) => i.repoTags.some((t) => t.includes("pause")))).toBe(true);
      const err = await kubelet.image.pullImage({ image: { image } }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message ?? "").toMatch(/401|unauthorized|authorization failed/i); // 1.x and 2.x word it differently
      expect(daemonConfigs(node.root).filter((c) => c.text.includes(priv.host))).toEqual([]);
    }, 120_000);

    test("the PullImage credentials reach the image's daemon: a container reads its data lazily", async () => {
      const pulled = await kubelet.image.pullImage({ image: { image }, auth: { username: USER, password: PASSWORD } }, { timeoutMs: 120_000 });
      expect(pulled.imageRef).toMatch(/^sha256:/);
      const status = await kubelet.image.imageStatus({ image: { image } });
      expect(status.image?.repoTags).toContain(image);
      const pod = await node.cri.runPod("cri-keychain");
      const c = await node.cri.startContainer(pod, { image, command: ["sh", "-c", "wc -c < /big"] });
      const lines = await node.cri.waitForLog(c.id, (l) => l.length >= 1, 60_000);
      expect(lines.map((l) => l.text.trim())).toEqual([String(BIG_BYTES)]);
      const mine = daemonConfigs(node.root).filter((x) => x.text.includes(priv.host));
      expect(mine.length).toBeGreaterThan(0);
      for (const x of mine) {
        expect(JSON.parse(x.text).device.backend.config.auth).toBe(Buffer.from(`${USER}:${PASSWORD}`).toString("base64"));
        expect(statSync(x.path).mode & 0o777).toBe(0o600);
      }
      await node.cri.stopAndRemoveContainer(c.id);
      await node.cri.removePod(pod);
      const logs = (readdirSync(node.dir, { recursive: true }) as string[])
        .filter((n) => n.endsWith(".log"))
        .map((n) => readFileSync(join(node.dir, n), "latin1"));
      const log = logs.join("\n");
      expect(readFileSync(join(node.dir, "rafsnap", "rafsnap.log"), "utf8")).toContain("CRI image service proxy to");
      expect(log).not.toContain(PASSWORD);
      expect(log).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString("base64"));
    }, 240_000);
  });
}
