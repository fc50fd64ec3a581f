// The nydusd HTTP API on a real unix socket, driven by an HTTP client, over a minimal daemon
// built from the real state machine (no mounts: those belong to the data-plane tests).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { notFound, unavailable } from "../errdefs/index.ts";
import { silentLogger } from "../log/index.ts";
import { type ApiServer, type DaemonApi, type MountRequest, startApiServer } from "./api.ts";
import { DaemonStateMachine } from "./state.ts";

function daemon(): DaemonApi & { mounts: Map<string, MountRequest>; level: string } {
  const sm = new DaemonStateMachine();
  const mounts = new Map<string, MountRequest>();
  const d = {
    mounts,
    level: "info",
    info: () => ({
      version: { package_ver: "0.1.0", git_commit: "abc", build_time: "t", profile: "release", rustc: "bun" },
      id: "d1",
      supervisor: null,
      state: sm.state,
      backend_collection: {},
    }),
    setLogLevel: (l: string) => {
      d.level = l;
    },
    start: async () => void sm.fire("Start"),
    exit: async () => void sm.fire("Exit"),
    sendFd: async () => {
      throw unavailable("no supervisor configured");
    },
    takeover: async () => void sm.fire("Takeover"),
    mount: async (mp: string, req: MountRequest) => {
      if (sm.state === "INIT") sm.fire("Mount");
      mounts.set(mp, req);
    },
    remount: async (mp: string, req: MountRequest) => {
      if (!mounts.has(mp)) throw notFound(`no instance at ${mp}`);
      mounts.set(mp, req);
    },
    umount: async (mp: string) => {
      if (!mounts.delete(mp)) throw notFound(`no instance at ${mp}`);
    },
    fsMetrics: (id: string | undefined) => ({ id: id ?? "", data_read: 0, nr_opens: 0 }),
    blobcacheMetrics: () => ({ underlying_files: [], store_path: "/cache" }),
    backendMetrics: () => ({ read_count: 0 }),
    inflight: () => [],
    getConfig: () => ({}),
    prefetchList: () => ({ recording: false, files: [] }),
    putConfig: () => {},
  };
  return d;
}

describe("nydusd API", () => {
  let dir: string;
  let sock: string;
  let server: ApiServer;
  const d = daemon();
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`http://localhost${path}`, { method, unix: sock, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rafsnap-api-"));
    sock = join(dir, "api.sock");
    server = await startApiServer(sock, d, silentLogger());
  });
  afterAll(() => {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("daemon info, state transitions, errors with nydusd's body and status", async () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const info = await call("GET", "/api/v1/daemon");
    expect(info.status).toBe(200);
    expect(info.headers.get("server")).toBe("Nydus API");
    expect(await info.json()).toMatchObject({ id: "d1", state: "INIT", version: { git_commit: "abc" } });
    const v2 = (await (await call("GET", "/api/v2/daemon")).json()) as Record<string, unknown>;
    expect(v2.backend_collection).toBeUndefined();
    const early = await call("PUT", "/api/v1/daemon/start");
    expect(early.status).toBe(400);
    expect(await early.json()).toEqual({ code: "UNDEFINED", message: "UnexpectedEvent: Start in state INIT" });
    const cfg = JSON.stringify({ device: {} });
    expect((await call("POST", "/api/v1/mount?mountpoint=/s1", { fs_type: "rafs", source: "/b", config: cfg })).status).toBe(204);
    expect((await call("PUT", "/api/v1/daemon/start")).status).toBe(204);
    expect(((await (await call("GET", "/api/v1/daemon")).json()) as { state: string }).state).toBe("RUNNING");
    expect(d.mounts.get("/s1")?.source).toBe("/b");
    expect((await call("DELETE", "/api/v1/mount?mountpoint=/s1")).status).toBe(204);
    expect((await call("DELETE", "/api/v1/mount?mountpoint=/s1")).status).toBe(404);
  });

  test("bad requests are 400, unknown routes 404, fscache 501, idle inflight 204", async () => {
    expect((await call("POST", "/api/v1/mount", { fs_type: "rafs", source: "/b", config: "{}" })).status).toBe(400);
    const bad = await call("POST", "/api/v1/mount?mountpoint=/x", { fs_type: "rafs", source: 5, config: "{}" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain("source must be a string");
    const notJson = await fetch("http://localhost/api/v1/mount?mountpoint=/x", { method: "POST", unix: sock, body: "{oops" } as RequestInit);
    expect(notJson.status).toBe(400);
    expect((await call("GET", "/api/v1/nope")).status).toBe(404);
    expect((await call("PUT", "/api/v2/blobs", {})).status).toBe(501);
    expect((await call("GET", "/api/v1/metrics/inflight")).status).toBe(204);
    expect(await (await call("GET", "/api/v1/metrics/blobcache?id=/s1")).json()).toHaveProperty("underlying_files");
    expect((await call("PUT", "/api/v1/daemon/fuse/sendfd")).status).toBe(503);
    expect((await call("PUT", "/api/v1/daemon", { log_level: "debug" })).status).toBe(204);
    expect(d.level).toBe("debug");
  });

  test("an idle connection stays open (clients hold one to watch the daemon)", async () => {
    const s = connect(sock);
    await new Promise((r) => s.once("connect", r));
    let closed = false;
    s.on("close", () => {
      closed = true;
    });
    await Bun.sleep(11_500); // past Bun's default 10 s idle timeout
    expect(closed).toBe(false);
    const reply = new Promise<string>((r) => s.once("data", (b) => r(b.toString())));
    s.write("GET /api/v1/daemon HTTP/1.1\r\nHost: localhost\r\n\r\n");
    expect(await reply).toStartWith("HTTP/1.1 200");
    s.destroy();
  }, 20_000);
});
