import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type BlobBackend, backendFromConfig, localfsBackend, type Schedule, tieredBackend } from "./backend.ts";
import { parseDaemonConfig } from "./config.ts";

const FIX = join(import.meta.dir, "../../../shared/fixtures/rafs");
const ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";

test("localfs reads <dir>/<id>, or the one blob_file whatever the id; past the end is an error", async () => {
  const want = new Uint8Array(readFileSync(join(FIX, ID))).subarray(100, 200);
  expect(await localfsBackend(FIX).read(ID, 100, 100)).toEqual(want);
  const other = "0".repeat(64);
  expect(await localfsBackend("/nonexistent", join(FIX, ID)).read(other, 100, 100)).toEqual(want);
  await expect(localfsBackend(FIX).read(ID, 14_500, 100)).rejects.toThrow("reaches past the end");
  await expect(localfsBackend(FIX).read("../etc", 0, 1)).rejects.toThrow("64 hex digits");
});

describe("tieredBackend (proxy → mirrors → origin)", () => {
  const bytes = new Uint8Array([1]);
  const endpoint = (name: string, ok: () => boolean) => {
    const calls: string[] = [];
    const backend: BlobBackend = {
      name,
      async read() {
        calls.push(name);
        if (!ok()) throw new Error(`${name} down`);
        return bytes;
      },
    };
    return { backend, calls };
  };

  test("falls over in order, skips a failed mirror for a while, never skips the origin", async () => {
    let mirrorUp = false;
    let t = 0;
    const m = endpoint("mirror", () => mirrorUp);
    const o = endpoint("origin", () => true);
    const logs: string[] = [];
    const b = tieredBackend(
      [
        { backend: m.backend, failureLimit: 2, skipMs: 1000, fallback: true },
        { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
      ],
      (x) => logs.push(x),
      () => t,
    );
    for (let i = 0; i < 3; i++) expect(await b.read("a".repeat(64), 0, 1)).toBe(bytes);
    // Two failures mark the mirror down; the third read goes straight to the origin.
    expect(m.calls.length).toBe(2);
    expect(o.calls.length).toBe(3);
    expect(logs[0]).toContain("mirror failed");
    mirrorUp = true;
    t = 2000; // skip period over
    await b.read("a".repeat(64), 0, 1);
    expect(m.calls.length).toBe(3);
    expect(o.calls.length).toBe(3);
  });

  test("a proxy without fallback fails the read; the origin's error is the one thrown", async () => {
    const p = endpoint("proxy", () => false);
    const o = endpoint("origin", () => false);
    const strict = tieredBackend([
      { backend: p.backend, failureLimit: 1, skipMs: 1000, fallback: false },
      { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
    ]);
    await expect(strict.read("a".repeat(64), 0, 1)).rejects.toThrow("proxy down");
    const lenient = tieredBackend([
      { backend: endpoint("proxy2", () => false).backend, failureLimit: 1, skipMs: 1000, fallback: true },
      { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
    ]);
    await expect(lenient.read("a".repeat(64), 0, 1)).rejects.toThrow("origin down");
  });

  test("a proxy without fallback is never skipped: each read goes to it and fails with it", async () => {
    const p = endpoint("proxy", () => false);
    const o = endpoint("origin", () => true);
    const b = tieredBackend([
      { backend: p.backend, failureLimit: 1, skipMs: 60_000, fallback: false },
      { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
    ]);
    for (let i = 0; i < 3; i++) await expect(b.read("a".repeat(64), 0, 1)).rejects.toThrow("proxy down");
    expect(p.calls.length).toBe(3);
    expect(o.calls.length).toBe(0);
  });

  /** Timers run when the test says so. */
  const fakeSchedule = () => {
    const pending = new Set<{ fn: () => void; ms: number }>();
    const schedule: Schedule = (fn, ms) => {
      const e = { fn, ms };
      pending.add(e);
      return () => pending.delete(e);
    };
    const fire = async () => {
      const due = [...pending];
      pending.clear();
      for (const e of due) e.fn();
      await Bun.sleep(1); // let the pings settle
    };
    return { schedule, pending, fire };
  };

  test("ping_url: a mirror is used only while its pings succeed; failed reads bench it until the next good ping", async () => {
    const clock = fakeSchedule();
    let pingOk = false;
    let mirrorUp = true;
    const signals: AbortSignal[] = [];
    const m = endpoint("mirror", () => mirrorUp);
    const o = endpoint("origin", () => true);
    const logs: string[] = [];
    let t = 0;
    const b = tieredBackend(
      [
        {
          backend: m.backend,
          failureLimit: 2,
          skipMs: 1000,
          fallback: true,
          health: {
            ping: async (s) => {
              signals.push(s);
              return pingOk;
            },
            intervalMs: 5000,
          },
        },
        { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
      ],
      (x) => logs.push(x),
      () => t,
      clock.schedule,
    );
    const read = () => b.read("a".repeat(64), 0, 1);
    // The first read waits for the first ping (failed): the mirror is never asked.
    for (let i = 0; i < 3; i++) await read();
    expect(m.calls.length).toBe(0);
    expect(o.calls.length).toBe(3);
    expect(logs).toEqual(["mirror fails its ping; skipped until it answers"]);
    expect([...clock.pending].map((e) => e.ms)).toEqual([5000]);
    // Time alone does not bring it back (no skip period for pinged tiers)…
    t = 1e9;
    await read();
    expect(m.calls.length).toBe(0);
    // …a successful ping does.
    pingOk = true;
    await clock.fire();
    expect(logs[1]).toBe("mirror answers its ping again; using it");
    await read();
    expect(m.calls.length).toBe(1);
    expect(o.calls.length).toBe(4);
    // Two failed reads take it out of use although its pings still succeed, until the next ping.
    mirrorUp = false;
    await read();
    await read();
    await read();
    expect(m.calls.length).toBe(3);
    expect(o.calls.length).toBe(7);
    mirrorUp = true;
    await clock.fire();
    await read();
    expect(m.calls.length).toBe(4);
    // close(): no timer left, the ping in flight (if any) is aborted, reads still work.
    expect(clock.pending.size).toBe(1);
    b.close();
    b.close();
    expect(clock.pending.size).toBe(0);
    expect(signals.every((s) => s.aborted)).toBe(true);
    await read();
    expect(m.calls.length).toBe(5);
  });

  test("ping_url: a ping that throws or hangs until close counts as unhealthy", async () => {
    const clock = fakeSchedule();
    const m = endpoint("mirror", () => true);
    const o = endpoint("origin", () => true);
    const b = tieredBackend(
      [
        { backend: m.backend, failureLimit: 1, skipMs: 0, fallback: true, health: { ping: async () => Promise.reject(new Error("boom")), intervalMs: 10 } },
        { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
      ],
      undefined,
      undefined,
      clock.schedule,
    );
    await b.read("a".repeat(64), 0, 1);
    expect(m.calls.length).toBe(0);
    b.close();
    const hung = tieredBackend(
      [
        {
          backend: m.backend,
          failureLimit: 1,
          skipMs: 0,
          fallback: true,
          health: { ping: (s) => new Promise((r) => s.addEventListener("abort", () => r(true))), intervalMs: 10 },
        },
        { backend: o.backend, failureLimit: 1, skipMs: 0, fallback: false },
      ],
      undefined,
      undefined,
      clock.schedule,
    );
    const pending = hung.read("a".repeat(64), 0, 1);
    hung.close(); // the read waiting for the first ping goes on to the origin
    await pending;
    expect(m.calls.length).toBe(0);
    expect(o.calls.length).toBe(2);
    expect(clock.pending.size).toBe(0);
  });
});

test("backendFromConfig: a mirror's headers go with its requests, not to the origin", async () => {
  const blob = new Uint8Array(4096).map((_, i) => i & 0xff);
  const seen: { server: string; path: string; headers: Headers }[] = [];
  const fake = (server: string) =>
    Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        seen.push({ server, path: url.pathname, headers: req.headers });
        const m = /bytes=(\d+)-(\d+)/.exec(req.headers.get("range") ?? "");
        const [a, z] = m ? [Number(m[1]), Number(m[2]) + 1] : [0, blob.length];
        return new Response(blob.subarray(a, z), { status: m ? 206 : 200, headers: m ? { "content-range": `bytes ${a}-${z - 1}/${blob.length}` } : {} });
      },
    });
  const mirror = fake("mirror");
  const origin = fake("origin");
  try {
    const cfg = parseDaemonConfig(
      JSON.stringify({
        device: {
          backend: {
            type: "registry",
            config: {
              host: `127.0.0.1:${origin.port}`,
              repo: "app",
              scheme: "http",
              mirrors: [{ host: `http://127.0.0.1:${mirror.port}`, headers: { "X-Dragonfly-Registry": "http://origin.example", "X-Extra": "1" } }],
            },
          },
          cache: { type: "blobcache", config: { work_dir: "/nonexistent" } },
        },
      }),
      "test",
    );
    const b = backendFromConfig(cfg.backend);
    expect(await b.read(ID, 100, 10)).toEqual(blob.subarray(100, 110));
    expect(seen.length).toBe(1);
    expect(seen[0]?.server).toBe("mirror");
    expect(seen[0]?.headers.get("x-dragonfly-registry")).toBe("http://origin.example");
    expect(seen[0]?.headers.get("x-extra")).toBe("1");
    expect(seen[0]?.headers.get("range")).toBe("bytes=100-109");
    mirror.stop(true);
    // The mirror is gone: the origin serves, without the mirror's headers.
    expect(await b.read(ID, 0, 10)).toEqual(blob.subarray(0, 10));
    const o = seen.find((x) => x.server === "origin");
    expect(o?.headers.get("x-extra")).toBeNull();
    b.close?.();
  } finally {
    mirror.stop(true);
    origin.stop(true);
  }
});
