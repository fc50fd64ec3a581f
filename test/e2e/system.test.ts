// The system controller of the compiled `rafsnap serve` ([system] enable, recover_policy
// failover, dedicated daemons): it lists the daemon of a mounted nydus image with its
// instance, RSS and bytes read, hands out its backend, and hot-upgrades it to a copy of the
// binary while a reader loops over the image's files — every read right, none failing, the
// daemon's pid changed to a process whose /proc/<pid>/exe is the copy. Root only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cleanup } from "../harness/cleanup.ts";
import { HELLO } from "../harness/images.ts";
import { spawnProcess, waitFor } from "../harness/process.ts";
import { type Registry, startRegistry } from "../harness/registry.ts";
import { requireBinary } from "../support/binary.ts";
import { type NydusTestImage, prepareNydusImage, serveNydus, viewNydusImage } from "../support/nydus-unpack.ts";
import type { RafsnapServer } from "../support/rafsnap.ts";

const isRoot = process.getuid?.() === 0;

interface Daemon {
  id: string;
  pid: number;
  api_socket: string;
  supervisor_path: string;
  mountpoint: string;
  memory_rss_kb: number;
  read_data_kb: number;
  instances: Record<string, { snapshot_id: string; image_id: string; mountpoint: string }>;
}

describe.skipIf(!isRoot)("system controller on [system] address", () => {
  const cleanup = new Cleanup();
  let dir = "";
  let sock = "";
  let img: NydusTestImage;
  let s: RafsnapServer;
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`http://localhost${path}`, { method, unix: sock, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);
    const text = await r.text();
    return { status: r.status, body: text === "" ? undefined : JSON.parse(text) };
  };

  beforeAll(async () => {
    dir = cleanup.tempDir("rafsnap-system-");
    sock = join(dir, "system", "system.sock");
    const reg: Registry = cleanup.add("registry", await startRegistry(join(dir, "registry")));
    img = await prepareNydusImage(dir, reg);
    s = await serveNydus(
      cleanup,
      dir,
      "serve",
      `daemon_mode = "dedicated"\n[system]\nenable = true\naddress = ${JSON.stringify(sock)}`,
      `recover_policy = "failover"`,
    );
  }, 180_000);
  afterAll(() => cleanup.run());

  test("lists the daemon, hands out its backend, and hot-upgrades it under a reader without a failed read", async () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "serve", "rafsnap.log"), "utf8")).not.toContain("system controller API is not built");
    const { image } = img;
    const { lower } = await viewNydusImage(s.client, img, "a");
    const hello = join(lower, "data/hello");
    expect(readFileSync(hello, "utf8").trim()).toBe(HELLO);

    const listed = await api("GET", "/api/v1/daemons");
    expect(listed.status).toBe(200);
    const [d] = listed.body as Daemon[];
    expect(listed.body.length).toBe(1);
    expect(Object.values(d?.instances ?? {}).map((i) => i.image_id)).toEqual([image]);
    expect(d?.api_socket.endsWith("/api.sock")).toBe(true);
    expect(d?.memory_rss_kb).toBeGreaterThan(1000);
    expect(d?.read_data_kb).toBeGreaterThan(0);
    const oldPid = d?.pid as number;
    expect(readlinkSync(`/proc/${oldPid}/exe`)).toBe(requireBinary());
    const backend = await api("GET", `/api/v1/daemons/${d?.id}/backend`);
    expect(backend.status).toBe(200);
    expect(backend.body.type).toBe("registry");
    expect((await api("GET", "/api/v1/daemons/nosuchdaemon/backend")).status).toBe(404);

    // A reader that drops the page cache every round, so every read reaches the daemon.
    const out = join(dir, "reader.out");
    const reader = spawnProcess({
      cmd: ["sh", "-c", `while [ ! -e ${dir}/stop ]; do echo 3 > /proc/sys/vm/drop_caches; cat ${hello} || echo READ-FAILED; sleep 0.05; done`],
      logFile: out,
    });
    cleanup.add("reader", reader);
    const count = () => readFileSync(out, "utf8").split("\n").filter(Boolean).length;
    await waitFor("reads before the upgrade", () => count() >= 3, 30_000);

    const copy = join(dir, "nydusd-new");
    copyFileSync(requireBinary(), copy);
    chmodSync(copy, 0o755);
    const up = await api("PUT", "/api/v1/daemons/upgrade", { nydusd_path: copy, version: "", policy: "rolling" });
    expect(up).toEqual({ status: 200, body: undefined });

    const after = ((await api("GET", "/api/v1/daemons")).body as Daemon[])[0] as Daemon;
    expect(after.id).toBe(d?.id as string);
    expect(after.pid).not.toBe(oldPid);
    expect(existsSync(`/proc/${oldPid}`)).toBe(false); // the old daemon exited (and was reaped)
    expect(readlinkSync(`/proc/${after.pid}/exe`)).toBe(copy);
    expect(after.api_socket.endsWith("/api1.sock")).toBe(true);
    expect(Object.keys(after.instances)).toEqual(Object.keys(d?.instances ?? {}));
    // The new binary is recorded for later starts.
    expect(readlinkSync(join(dir, "serve", "nydusd"))).toBe(copy);

    const atUpgrade = count();
    await waitFor("reads after the upgrade", () => count() >= atUpgrade + 5, 30_000);
    writeFileSync(join(dir, "stop"), "");
    await reader.exited;
    const lines = readFileSync(out, "utf8").trim().split("\n");
    expect(lines.length).toBeGreaterThan(8);
    expect(lines.filter((l) => l !== HELLO)).toEqual([]);
    expect(readFileSync(hello, "utf8").trim()).toBe(HELLO);
  }, 120_000);
});
