// The system controller's HTTP API on a real unix socket, without daemons (fs_driver nodev):
// routes, the error shape and statuses, the upgrade request's checks and the nydusd_path link.
// Hot upgrade of running daemons: test/e2e/system.test.ts.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../log/index.ts";
import { PrefetchLists } from "../manager/index.ts";
import { DaemonStore, openDb, systemClock } from "../store/index.ts";
import { SystemController } from "./controller.ts";
import { type SystemServer, serveSystem } from "./server.ts";

let dir = "";
let server: SystemServer;
let db: ReturnType<typeof openDb>;
const prefetch = new PrefetchLists();
const call = async (method: string, path: string, body?: string) => {
  const r = await fetch(`http://localhost${path}`, { method, body, unix: server.path } as RequestInit);
  const text = await r.text();
  return { status: r.status, body: text === "" ? undefined : JSON.parse(text) };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rafsnap-system-"));
  db = openDb(join(dir, "db"));
  const logger = silentLogger();
  // `[daemon] nydusd_path` as packaged: a link, replaced after an upgrade.
  symlinkSync("/bin/true", join(dir, "nydusd"));
  const controller = new SystemController({ store: new DaemonStore(db, systemClock()), prefetch, nydusdPath: join(dir, "nydusd"), logger });
  server = await serveSystem(join(dir, "run", "system.sock"), controller, { uid: 0, gid: process.getgid?.() ?? 0 }, logger);
});
afterAll(async () => {
  await server?.stop();
  db?.$client.close();
  rmSync(dir, { recursive: true, force: true });
});

test("the socket is 0600; no daemons; records are not implemented; unknown routes 404 in the error shape", async () => {
  expect(statSync(server.path).mode & 0o777).toBe(0o600);
  expect(await call("GET", "/api/v1/daemons")).toEqual({ status: 200, body: [] });
  expect(await call("GET", "/api/v1/daemons/records")).toEqual({ status: 501, body: { code: "Unknown", message: "not implemented" } });
  const r = await call("GET", "/api/v1/nope");
  expect(r.status).toBe(404);
  expect(Object.keys(r.body)).toEqual(["code", "message"]);
  const b = await call("GET", "/api/v1/daemons/d0000000000000000000/backend");
  expect(b.status).toBe(404);
  expect(b.body.message).toContain("d0000000000000000000");
});

test("prefetch lists are recorded per image and used up once; a malformed body is 400 and records nothing", async () => {
  expect(
    (
      await call(
        "PUT",
        "/api/v1/prefetch",
        JSON.stringify([
          { image: "r/a:1", prefetch: "/p/a" },
          { image: "r/b:1", prefetch: "/p/b" },
        ]),
      )
    ).status,
  ).toBe(200);
  expect((await call("PUT", "/api/v1/prefetch", JSON.stringify([{ image: "r/c:1", prefetch: "/p/c" }, { image: 3 }]))).status).toBe(400);
  expect((await call("PUT", "/api/v1/prefetch", "{not json")).status).toBe(400);
  expect(prefetch.take("r/a:1")).toBe("/p/a");
  expect(prefetch.take("r/a:1")).toBeUndefined();
  expect(prefetch.take("r/c:1")).toBeUndefined();
  expect(prefetch.size).toBe(1);
});

test("upgrade checks the binary and its version, then links nydusd_path to it", async () => {
  const put = (body: unknown) => call("PUT", "/api/v1/daemons/upgrade", JSON.stringify(body));
  expect((await put({ nydusd_path: "relative/nydusd" })).status).toBe(400);
  expect((await put({ nydusd_path: join(dir, "missing") })).status).toBe(400);
  const notNydusd = await put({ nydusd_path: "/bin/true" });
  expect(notNydusd.status).toBe(400);
  expect(notNydusd.body.message).toContain("--version");
  const fake = join(dir, "nydusd-2");
  writeFileSync(fake, "#!/bin/sh\necho 'Version: \t2.9.1'\necho 'Git Commit: \tabc'\n");
  chmodSync(fake, 0o755);
  const mismatch = await put({ nydusd_path: fake, version: "v3.0.0", policy: "rolling" });
  expect(mismatch.status).toBe(412);
  expect(mismatch.body.message).toContain("2.9.1");
  expect(readlinkSync(join(dir, "nydusd"))).toBe("/bin/true");
  expect(await put({ nydusd_path: fake, version: "v2.9.1", policy: "rolling" })).toEqual({ status: 200, body: undefined });
  expect(readlinkSync(join(dir, "nydusd"))).toBe(fake);
});
