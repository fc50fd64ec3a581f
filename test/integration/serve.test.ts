// The compiled binary on a real unix socket with a real SQLite file, driven by a typed gRPC
// client speaking containerd's snapshots API. Bad input gets the exact gRPC code containerd
// expects and leaves no row and no directory behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { Kind } from "../../gen/containerd/services/snapshots/v1/snapshots_pb.ts";
import { mountNoDTypeFs } from "../harness/nodtype.ts";
import { run } from "../harness/process.ts";
import { requireBinary, SYSTEM_PATH } from "../support/binary.ts";
import { type RafsnapServer, rafsnapCli, removeDir, startRafsnap, tempDir, withScratch } from "../support/rafsnap.ts";
import { codeOf } from "../support/failure.ts";

describe("rafsnap serve (compiled binary)", () => {
  let dir: string;
  let srv: RafsnapServer;

  beforeAll(async () => {
    dir = tempDir("serve");
    srv = await startRafsnap(dir);
  });
  // Longer than the server's stop grace (SIGTERM, then SIGKILL after 10 s), so the directory
  // is removed even when a test leaves a call open.
  afterAll(async () => {
    try {
      await srv?.stop();
    } finally {
      removeDir(dir);
    }
  }, 30_000);

  test("the debug log names labels but never shows their values (pull secrets)", async () => {
    const secret = "c2VjcmV0LXB1bGwtc2VjcmV0LXZhbHVl-do-not-log";
    await srv.client.prepare({
      key: "ns/1/secret",
      labels: { "containerd.io/snapshot/pullsecret": secret, "containerd.io/snapshot/pullusername": "tenant-user-x" },
    });
    await srv.client
      .update({
        info: { name: "ns/1/secret", labels: { "containerd.io/snapshot/pullsecret": `${secret}-2` } },
        updateMask: { paths: ["labels.containerd.io/snapshot/pullsecret"] },
      })
      .catch(() => {});
    await srv.client.remove({ key: "ns/1/secret" });
    const log = await Bun.file(join(dir, "rafsnap.log")).text();
    expect(log).toContain("containerd.io/snapshot/pullsecret"); // the request was logged…
    expect(log).not.toContain(secret); // …without the value
    expect(log).not.toContain("tenant-user-x");
  });

  test("a parent whose directory was lost: Prepare on it is FailedPrecondition naming it, not UNKNOWN errno text", async () => {
    const snaps = join(srv.root, "snapshots");
    const before = new Set(readdirSync(snaps));
    await srv.client.prepare({ key: "lost-active", parent: "" });
    await srv.client.commit({ name: "lost", key: "lost-active" });
    const id = readdirSync(snaps).find((n) => !before.has(n)) as string;
    rmSync(join(snaps, id), { recursive: true, force: true });
    const r = await codeOf(srv.client.prepare({ key: "on-lost", parent: "lost" }));
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.message).toContain('parent snapshot "lost" of "on-lost" has lost its directory');
    await srv.client.remove({ key: "lost" });
  });

  test("a huge key is cut short in the log, in the request line and in the failure line", async () => {
    const key = `huge-${"k".repeat(1 << 20)}`;
    const before = (await Bun.file(join(dir, "rafsnap.log")).text()).length;
    await expect(srv.client.stat({ key })).rejects.toThrow();
    await Bun.sleep(100);
    const added = (await Bun.file(join(dir, "rafsnap.log")).text()).slice(before);
    expect(added).toContain(`(${Buffer.byteLength(key)} bytes)`);
    expect(added.length).toBeLessThan(16 << 10);
  });

  test("a Usage whose deadline passes stops walking (canceled), and List pages through many snapshots", async () => {
    const res = await srv.client.prepare({ key: "big", parent: "" });
    const upper = res.mounts[0]?.options.find((o) => o.startsWith("upperdir="))?.slice(9) ?? (res.mounts[0]?.source as string);
    for (let d = 0; d < 60; d++) {
      mkdirSync(join(upper, `d${d}`));
      for (let f = 0; f < 500; f++) writeFileSync(join(upper, `d${d}`, `f${f}`), "x");
    }
    await expect(srv.client.usage({ key: "big" }, { timeoutMs: 20 })).rejects.toThrow();
    await Bun.sleep(500);
    expect(await Bun.file(join(dir, "rafsnap.log")).text()).toContain('Usage key="big" failed (canceled)');
    // Without a deadline the same walk completes.
    expect(Number((await srv.client.usage({ key: "big" })).inodes)).toBeGreaterThan(30_000);
    // More snapshots than one page of List holds.
    for (let i = 0; i < 1200; i++) await srv.client.view({ key: `v/${String(i).padStart(4, "0")}`, parent: "" }).catch(() => {});
    const names: string[] = [];
    for await (const r of srv.client.list({ filters: ['name~="^v/"'] })) names.push(...r.info.map((i) => i.name));
    expect(names.length).toBe(1200);
    expect(new Set(names).size).toBe(1200);
    for (let i = 0; i < 1200; i++) await srv.client.remove({ key: `v/${String(i).padStart(4, "0")}` });
    await srv.client.remove({ key: "big" });
  }, 120_000);

  test("200 concurrent Lists of snapshots with large labels, half of them stalled: the server holds about a page per List, not the answers", async () => {
    const labels: Record<string, string> = {};
    for (let i = 0; i < 15; i++) labels[`l${i}`] = String.fromCharCode(97 + i).repeat(4000); // 60 KB a snapshot
    const keys = Array.from({ length: 300 }, (_, i) => `labelled/${String(i).padStart(3, "0")}`);
    for (const key of keys) await srv.client.view({ key, parent: "", labels });
    const status = () => readFileSync(`/proc/${srv.proc.pid}/status`, "utf8");
    const mib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status())?.[1]) / 1024;
    writeFileSync(`/proc/${srv.proc.pid}/clear_refs`, "5"); // peak RSS starts again from now
    const before = mib("VmRSS");
    const stall = new AbortController();
    const readers = Array.from({ length: 100 }, async () => {
      let n = 0;
      for await (const r of srv.client.list({ filters: ['name~="^labelled/"'] })) n += r.info.length;
      return n;
    });
    const holders = Array.from({ length: 100 }, async () => {
      const it = srv.client.list({ filters: ['name~="^labelled/"'] }, { signal: stall.signal })[Symbol.asyncIterator]();
      await it.next(); // one message, then nothing read: 18 MB of answer each left unsent
    });
    await Promise.all(holders);
    expect(await Promise.all(readers)).toEqual(Array(100).fill(300));
    await Bun.sleep(500);
    const peak = mib("VmHWM");
    stall.abort();
    // 200 answers of 18 MB each: held in memory they would take 3.6 GB.
    expect(peak - before).toBeLessThan(600);
    for (const key of keys) await srv.client.remove({ key });
  }, 180_000);

  test("a burst of Prepares whose 1 ms deadlines pass while they wait: those not started do nothing, and what exists is whole", async () => {
    const snaps = join(srv.root, "snapshots");
    const dirsBefore = readdirSync(snaps).length;
    const keys = Array.from({ length: 200 }, (_, i) => `deadline/${i}`);
    const answers = await Promise.all(keys.map((key) => codeOf(srv.client.prepare({ key, parent: "" }, { timeoutMs: 1 }))));
    await Bun.sleep(500);
    const listed: string[] = [];
    for await (const r of srv.client.list({ filters: ['name~="^deadline/"'] })) listed.push(...r.info.map((i) => i.name));
    expect(answers.filter((a) => a.code === Code.DeadlineExceeded).length).toBeGreaterThan(0);
    // Most of the burst is refused before it starts (before: 196 of 200 created anyway).
    expect(listed.length).toBeLessThan(100);
    // Every snapshot that exists has its directory, and there is no directory without one.
    expect(readdirSync(snaps).length).toBe(dirsBefore + listed.length);
    for (const key of listed) expect((await srv.client.mounts({ key })).mounts.length).toBeGreaterThan(0);
    for (const key of listed) await srv.client.remove({ key });
    expect(await Bun.file(join(dir, "rafsnap.log")).text()).toContain("deadline passed before it started; nothing was done");
  });

  test("regexp filters have RE2 semantics in the binary: a pattern that defeats backtracking matches as in Go", async () => {
    const key = `${"a".repeat(33)}!`;
    await srv.client.prepare({ key, parent: "" });
    try {
      const names: string[] = [];
      for await (const r of srv.client.list({ filters: ['name~="(a+)+$|!"'] })) names.push(...r.info.map((i) => i.name));
      expect(names).toContain(key);
      // Go refuses (a{1000}){1000}; so do we, with Go's reason.
      const bad = await codeOf(
        (async () => {
          for await (const _ of srv.client.list({ filters: ["name~=(a{1000}){1000}"] })) void _;
        })(),
      );
      expect(bad.code).toBe(Code.InvalidArgument);
      expect(bad.message).toContain("invalid repeat count: `{1000}`");
    } finally {
      await srv.client.remove({ key });
    }
  });

  test("socket mode 0660, database file created", () => {
    expect(lstatSync(srv.socket).mode & 0o777).toBe(0o660);
    expect(lstatSync(join(srv.root, "rafsnap.db")).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(srv.root, "rafsnap.db-wal")).mode & 0o777).toBe(0o600);
    expect(lstatSync(srv.root).mode & 0o777).toBe(0o700);
  });

  test("prepare → commit → stat → list → update → usage → view → remove", async () => {
    const c = srv.client;
    const p = await c.prepare({ key: "ns/1/a", labels: { "containerd.io/gc.root": "x" } });
    expect(p.mounts).toHaveLength(1);
    expect(p.mounts[0]?.type).toBe("bind");
    expect(p.mounts[0]?.options).toEqual(["rw", "rbind"]);
    const upper = p.mounts[0]?.source as string;
    writeFileSync(join(upper, "hello"), "hello world\n");

    const u = await c.usage({ key: "ns/1/a" });
    expect(u.size).toBeGreaterThan(0n);
    expect(u.inodes).toBe(2n);

    await c.commit({ name: "ns/1/A", key: "ns/1/a", labels: { l: "1" } });
    const st = await c.stat({ key: "ns/1/A" });
    expect(st.info?.kind).toBe(Kind.COMMITTED);
    expect(st.info?.labels).toEqual({ l: "1" });
    expect(st.info?.createdAt?.seconds).toBeGreaterThan(0n);
    expect((await codeOf(c.stat({ key: "ns/1/a" }))).code).toBe(Code.NotFound);

    const child = await c.prepare({ key: "ns/1/b", parent: "ns/1/A" });
    const opts = child.mounts[0]?.options ?? [];
    expect(child.mounts[0]?.type).toBe("overlay");
    expect(opts[0]).toStartWith("workdir=");
    expect(opts[1]).toStartWith("upperdir=");
    expect(opts[2]).toBe(`lowerdir=${upper}`);
    const m = await c.mounts({ key: "ns/1/b" });
    expect(m.mounts[0]?.options).toEqual(opts);

    const view = await c.view({ key: "ns/1/v", parent: "ns/1/A" });
    expect(view.mounts[0]).toMatchObject({ type: "bind", source: upper, options: ["ro", "rbind"] });

    const listed: string[] = [];
    for await (const r of c.list({ filters: ["kind==active"] })) listed.push(...r.info.map((i) => i.name));
    expect(listed).toEqual(["ns/1/b"]);
    const byParent: string[] = [];
    for await (const r of c.list({ filters: ["parent==ns/1/A", 'labels."containerd.io/gc.root"'] })) byParent.push(...r.info.map((i) => i.name));
    expect(byParent.sort()).toEqual(["ns/1/b", "ns/1/v"]);

    const up = await c.update({
      info: { name: "ns/1/A", labels: { l: "2", n: "3" } },
      updateMask: { paths: ["labels.n"] },
    });
    expect(up.info?.labels).toEqual({ l: "1", n: "3" });

    const cu = await c.usage({ key: "ns/1/A" });
    expect(cu.inodes).toBe(2n);

    expect((await codeOf(c.remove({ key: "ns/1/A" }))).code).toBe(Code.FailedPrecondition);
    await c.remove({ key: "ns/1/b" });
    await c.remove({ key: "ns/1/v" });
    await c.remove({ key: "ns/1/A" });
    await c.cleanup({});
    expect(readdirSync(join(srv.root, "snapshots"))).toEqual([]);
  });

  test("bad input: exact gRPC codes, messages name the key, nothing half-created", async () => {
    const c = srv.client;
    await c.prepare({ key: "base" });
    await c.commit({ name: "Base", key: "base" });
    await c.prepare({ key: "kid", parent: "Base" });
    const before = readdirSync(join(srv.root, "snapshots")).sort();

    const cases: [string, () => Promise<unknown>, Code, string][] = [
      ["empty key", () => c.prepare({ key: "" }), Code.InvalidArgument, "key must not be empty"],
      ["dot-dot key", () => c.prepare({ key: "a/../b" }), Code.InvalidArgument, '"a/../b"'],
      ["NUL key", () => c.prepare({ key: "a\0b" }), Code.InvalidArgument, "NUL"],
      ["long key", () => c.prepare({ key: "k".repeat(4097) }), Code.InvalidArgument, "4097 bytes"],
      ["unknown parent", () => c.prepare({ key: "x", parent: "nope" }), Code.NotFound, '"nope"'],
      ["active parent", () => c.prepare({ key: "x", parent: "kid" }), Code.InvalidArgument, '"kid"'],
      ["duplicate key", () => c.prepare({ key: "kid", parent: "Base" }), Code.AlreadyExists, '"kid"'],
      ["duplicate view", () => c.view({ key: "kid", parent: "Base" }), Code.AlreadyExists, '"kid"'],
      ["commit committed", () => c.commit({ name: "Base2", key: "Base" }), Code.FailedPrecondition, '"Base"'],
      ["commit onto existing name", () => c.commit({ name: "Base", key: "kid" }), Code.AlreadyExists, '"Base"'],
      ["remove with children", () => c.remove({ key: "Base" }), Code.FailedPrecondition, '"Base"'],
      ["remove missing", () => c.remove({ key: "ghost" }), Code.NotFound, '"ghost"'],
      ["mounts of committed", () => c.mounts({ key: "Base" }), Code.FailedPrecondition, '"Base"'],
      ["oversized label", () => c.prepare({ key: "big", labels: { k: "v".repeat(4096) } }), Code.InvalidArgument, '"big"'],
      ["oversized label on update", () => c.update({ info: { name: "Base", labels: { k: "v".repeat(4096) } } }), Code.InvalidArgument, '"Base"'],
      ["update parent", () => c.update({ info: { name: "Base" }, updateMask: { paths: ["parent"] } }), Code.InvalidArgument, "parent"],
      [
        "bad filter",
        () =>
          (async () => {
            for await (const _ of c.list({ filters: ["kind=="] })) {
              /* drain */
            }
          })(),
        Code.InvalidArgument,
        "kind==",
      ],
    ];
    for (const [name, call, code, text] of cases) {
      const got = await codeOf(call());
      expect({ name, code: got.code === undefined ? "none" : Code[got.code] }).toEqual({ name, code: Code[code] });
      expect(got.message).toContain(text);
    }
    expect(readdirSync(join(srv.root, "snapshots")).sort()).toEqual(before);
    const names: string[] = [];
    for await (const r of c.list({})) names.push(...r.info.map((i) => i.name));
    expect(names.sort()).toEqual(["Base", "kid"]);
  });
});

describe("rafsnap process behaviour", () => {
  test("runs with no bun and no node_modules on PATH; SIGTERM exits 0 and removes the socket", () =>
    withScratch("sigterm", async (s) => {
      const srv = await s.start();
      await srv.client.prepare({ key: "k" });
      expect(await srv.stop()).toBe(0);
      expect(existsSync(srv.socket)).toBe(false);
    }));

  test("a stale socket is replaced; any other file at the address is refused", () =>
    withScratch("stale", async (s) => {
      const first = await s.start();
      // SIGKILL leaves the socket file behind.
      process.kill(first.proc.pid, "SIGKILL");
      await first.proc.exited;
      expect(lstatSync(first.socket).isSocket()).toBe(true);
      const second = await s.start();
      await second.client.prepare({ key: "again" });
      expect(await second.stop()).toBe(0);

      writeFileSync(first.socket, "not a socket");
      const r = await rafsnapCli(["serve", "--root", join(s.dir, "root"), "--address", first.socket]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`${first.socket} exists and is not a socket`);
    }));

  test("one process per root, and a live socket is never taken over", () =>
    withScratch("exclusive", async (s) => {
      const first = await s.start();
      const sameRoot = await rafsnapCli(["serve", "--root", first.root, "--address", join(s.dir, "other.sock")]);
      expect(sameRoot.code).toBe(1);
      expect(sameRoot.stderr).toContain(`${join(first.root, "rafsnap.lock")} is locked`);
      const sameSocket = await rafsnapCli(["serve", "--root", join(s.dir, "root2"), "--address", first.socket]);
      expect(sameSocket.code).toBe(1);
      expect(sameSocket.stderr).toContain(`${first.socket} is in use by another process`);
      // …refused before the other root was created or migrated
      expect(existsSync(join(s.dir, "root2"))).toBe(false);
      // A socket whose directory cannot be made (a file is in the way): a clear refusal.
      writeFileSync(join(s.dir, "file"), "");
      const blocked = await rafsnapCli(["serve", "--root", join(s.dir, "root3"), "--address", join(s.dir, "file", "s.sock")]);
      expect(blocked.code).not.toBe(0);
      expect(blocked.stderr).toContain(`its directory ${join(s.dir, "file")} cannot be created (a file that is not a directory is in the way)`);
      // the first one is unharmed
      await first.client.prepare({ key: "still-serving" });
    }));

  test("invalid config: exit 2, the message names key, value and what is allowed", () =>
    withScratch("badcfg", async (s) => {
      const cfg = join(s.dir, "config.toml");
      writeFileSync(cfg, 'version = 1\n[daemon]\nfs_driver = "floppy"\n[bogus]\nx = 1\n');
      const r = await rafsnapCli(["serve", "--config", cfg, "--root", join(s.dir, "root")]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("daemon.fs_driver");
      expect(r.stderr).toContain("floppy");
      expect(r.stderr).toContain("fusedev");
      const missing = await rafsnapCli(["serve", "--config", join(s.dir, "nope.toml")]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain(join(s.dir, "nope.toml"));
    }));

  test.skipIf(process.getuid?.() !== 0)("a root without d_type is refused at start, naming the root", () =>
    withScratch("nodtype", async (s) => {
      const fs = mountNoDTypeFs(s.dir);
      try {
        const root = join(fs.mnt, "root");
        const r = await rafsnapCli(["serve", "--root", root, "--address", join(s.dir, "s.sock")]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`root ${root} is on a filesystem without d_type support`);
        expect(existsSync(join(s.dir, "s.sock"))).toBe(false);
      } finally {
        fs.unmount();
      }
    }),
  );

  test("invoked as containerd-nydus-grpc it is the snapshotter with the Go flags", () =>
    withScratch("dropin", async (s) => {
      const link = join(s.dir, "containerd-nydus-grpc");
      symlinkSync(requireBinary(), link);
      const v = await run([link, "--version"], { env: { PATH: SYSTEM_PATH } });
      expect(v.code).toBe(0);
      expect(v.stdout).toMatch(/^Version: \tv\d+\.\d+\.\d+\nRevision: /);
      const cfg = await rafsnapCli(["config", "--root", join(s.dir, "r"), "--fs-driver", "fscache"]);
      expect(cfg.code).toBe(0);
      const parsed = Bun.TOML.parse(cfg.stdout) as { root: string; daemon_mode: string; daemon: { fs_driver: string } };
      expect(parsed.root).toBe(join(s.dir, "r"));
      expect(parsed.daemon.fs_driver).toBe("fscache");
      expect(parsed.daemon_mode).toBe("shared");
      expect((await rafsnapCli(["version"])).stdout).toContain("rafsnap ");
      const bogus = await rafsnapCli(["bogus"]);
      expect(bogus.code).toBe(2);
      expect(bogus.stderr).toContain("bogus");
    }));
});
