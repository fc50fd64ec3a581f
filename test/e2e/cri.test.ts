// End to end through Kubernetes CRI, as kubelet drives a node: containerd's CRI plugin with the
// built-in overlayfs snapshotter, a real registry on 127.0.0.1, images built here, a local
// sandbox image. PullImage, RunPodSandbox (host network), CreateContainer/StartContainer, read
// the container's CRI log, then stop and remove everything and RemoveImage. This checks the
// CRI test client and harness (test/support/cri-client.ts, test/harness/cri.ts) that the nydus
// tests build on. Root only (mounts, runc); CI runs it as root.
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ContainerState } from "../../gen/k8s/runtime/v1/api_pb.ts";
import { useCleanup } from "../harness/cleanup.ts";
import { type Containerd, startContainerd } from "../harness/containerd.ts";
import { type CriHarness, criHarness, DEFAULT_SANDBOX_IMAGE, parseCriLog } from "../harness/cri.ts";
import { BUILD_IMAGES } from "../harness/images.ts";
import { run } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";

const SN = "overlayfs";
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/e2e/cri.test.ts needs root (mounts, runc); run it as root as CI does");

describe("parseCriLog", () => {
  test("reads full lines, joins partial ones per stream, skips junk", () => {
    const text = [
      "2026-01-01T00:00:00.000000001Z stdout F hello",
      "2026-01-01T00:00:00.000000002Z stdout P par",
      "2026-01-01T00:00:00.000000003Z stderr F oops",
      "2026-01-01T00:00:00.000000004Z stdout F tial",
      "2026-01-01T00:00:00.000000005Z stdout F ",
      "not a log line",
      "",
    ].join("\n");
    expect(parseCriLog(text)).toEqual([
      { time: "2026-01-01T00:00:00.000000001Z", stream: "stdout", text: "hello" },
      { time: "2026-01-01T00:00:00.000000003Z", stream: "stderr", text: "oops" },
      { time: "2026-01-01T00:00:00.000000002Z", stream: "stdout", text: "partial" },
      { time: "2026-01-01T00:00:00.000000005Z", stream: "stdout", text: "" },
    ]);
  });
});

describe.skipIf(!isRoot)("CRI: pull, pod, container, log, remove (containerd CRI + overlayfs)", () => {
  const cleanup = useCleanup();
  let dir = "";
  let registry: Registry;
  let ctd: Containerd;
  let cri: CriHarness;
  let image = "";
  let imageId = "";

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-cri-");
    registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    const b = await run(["bash", BUILD_IMAGES, join(dir, "img"), registry.host], { timeoutMs: 60_000 });
    if (b.code !== 0) throw new Error(`build-image.sh: ${b.stderr}`);
    image = `${registry.host}/busybox:single`;
    // No registry config: containerd 1.6's CRI pulls from 127.0.0.1:PORT over plain HTTP.
    ctd = cleanup.add("containerd", await startContainerd({ dir: join(dir, "containerd"), cri: { snapshotter: SN } }));
    // Registered after containerd: removes every pod before containerd stops.
    cri = cleanup.add("cri pods", criHarness(ctd, { dir: join(dir, "cri"), snapshotter: SN }));
    await cri.importSandboxImage();
  }, 120_000);

  test("Version answers for containerd with CRI v1", async () => {
    const v = await cri.version();
    expect(v.runtimeName).toBe("containerd");
    expect(v.runtimeApiVersion).toBe("v1");
  });

  test("the imported sandbox image is known to CRI", async () => {
    const img = await cri.imageStatus(DEFAULT_SANDBOX_IMAGE);
    expect(img?.repoTags).toContain(DEFAULT_SANDBOX_IMAGE);
  });

  test("PullImage from the 127.0.0.1 registry returns the image id and ListImages lists it", async () => {
    imageId = await cri.pullImage(image);
    expect(imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    const listed = (await cri.listImages()).find((i) => i.id === imageId);
    expect(listed?.repoTags).toContain(image);
    expect(listed?.repoDigests.some((d) => d.startsWith(`${registry.host}/busybox@sha256:`))).toBe(true);
    // Unpacked into CRI's snapshotter in namespace k8s.io: the image's one layer.
    const snaps = await ctd.snapshots(SN, { namespace: "k8s.io" });
    expect(snaps.filter((s) => s.kind === "Committed").length).toBeGreaterThanOrEqual(2); // busybox + pause
  });

  test("a container in a host-network pod runs and its CRI log holds its output", async () => {
    const pod = await cri.runPod("cri-e2e");
    expect(pod.id).toMatch(/^[0-9a-f]{64}$/);
    const c = await cri.startContainer(pod, { image, command: ["/bin/sh", "-c"], args: ["cat /etc/passwd; echo done"] });
    const lines = await cri.waitForLog(c.id, (l) => l.some((x) => x.text === "done"), 30_000);
    expect(lines.filter((l) => l.stream === "stdout").map((l) => l.text)).toEqual([
      "root:x:0:0:root:/root:/bin/sh",
      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
      "done",
    ]);
    const status = await cri.waitForExit(c.id);
    expect(status.exitCode).toBe(0);
    expect(status.logPath).toBe(c.logPath);
    // The same file, read by path.
    expect(await cri.waitForLog(c.logPath, (l) => l.length >= 3)).toEqual(lines);

    await cri.stopAndRemoveContainer(c.id);
    const left = (await cri.clients.runtime.listContainers({})).containers;
    expect(left.map((x) => x.id)).not.toContain(c.id);
    await cri.removePod(pod);
    expect((await cri.clients.runtime.listPodSandbox({})).items).toEqual([]);
    // Nothing of the pod is left with containerd either (sandbox and container objects).
    expect((await ctd.ctrOk(["containers", "ls", "-q"], { namespace: "k8s.io" })).trim()).toBe("");
    expect((await ctd.ctrOk(["tasks", "ls", "-q"], { namespace: "k8s.io" })).trim()).toBe("");
  });

  test("a long-running container is stopped by removePod", async () => {
    const pod = await cri.runPod("cri-e2e-2");
    const c = await cri.startContainer(pod, { image, command: ["/bin/sh", "-c", "echo up; exec sleep 600"] });
    await cri.waitForLog(c.id, (l) => l.some((x) => x.text === "up"));
    expect((await cri.containerStatus(c.id)).state).toBe(ContainerState.CONTAINER_RUNNING);
    await cri.removePod(pod);
    expect((await cri.clients.runtime.listContainers({})).containers).toEqual([]);
    expect((await cri.clients.runtime.listPodSandbox({})).items).toEqual([]);
  });

  test("RemoveImage: ListImages no longer lists it; GC frees its layer", async () => {
    await cri.removeImage(image);
    expect(await cri.imageStatus(image)).toBeUndefined();
    expect((await cri.listImages()).map((i) => i.id)).not.toContain(imageId);
    await ctd.gc();
    // Only the sandbox image's layer is left.
    const snaps = await ctd.snapshots(SN, { namespace: "k8s.io" });
    expect(snaps.filter((s) => s.kind === "Committed")).toHaveLength(1);
    expect(snaps.filter((s) => s.kind !== "Committed")).toEqual([]);
  });

  test("PullImage with username/password from a registry with basic auth", async () => {
    const auth = { username: "alice", password: "s3cret" };
    const reg = cleanup.add("auth registry", await startRegistry(join(dir, "registry-auth"), { htpasswd: { user: auth.username, password: auth.password } }));
    const ref = `${reg.host}/private/busybox:single`;
    const push = await run(
      [
        "skopeo",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        `${auth.username}:${auth.password}`,
        `oci:${join(dir, "img/busybox")}:single`,
        `docker://${ref}`,
      ],
      { timeoutMs: 60_000 },
    );
    if (push.code !== 0) throw new Error(`skopeo: ${push.stderr}`);
    await expect(cri.pullImage(ref)).rejects.toThrow();
    await expect(cri.pullImage(ref, { ...auth, password: "wrong" })).rejects.toThrow();
    // Same content as the anonymous pull (removed above): same image id.
    expect(await cri.pullImage(ref, auth)).toBe(imageId);
    await cri.removeImage(ref);
    expect(await cri.imageStatus(ref)).toBeUndefined();
    expect((await cri.listImages()).flatMap((i) => i.repoTags)).toEqual([DEFAULT_SANDBOX_IMAGE]);
  });
});
