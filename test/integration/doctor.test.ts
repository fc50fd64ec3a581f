// `rafsnap doctor` (compiled binary) as root on this machine: a real containerd (the test
// harness's) wired to a running rafsnap passes every required check; an unwired containerd
// config fails the wiring check with the fix; a root on a filesystem without d_type fails.
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CONTAINERD_BIN, startContainerd } from "../harness/containerd.ts";
import { mountNoDTypeFs } from "../harness/nodtype.ts";
import { rafsnapCli, withScratch } from "../support/rafsnap.ts";

const IS_ROOT = process.getuid?.() === 0;

interface Check {
  id: string;
  status: "ok" | "warn" | "fail";
  required: boolean;
  message: string;
  fix?: string;
}

const byId = (checks: Check[], id: string): Check => {
  const c = checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id} in ${JSON.stringify(checks)}`);
  return c;
};

describe.skipIf(!IS_ROOT || !Bun.which(CONTAINERD_BIN))("rafsnap doctor (compiled binary, root)", () => {
  test("containerd wired to a running rafsnap: every required check ok, exit 0", async () => {
    await withScratch("doctor-ok", async (s) => {
      const srv = await s.start();
      const ctd = await startContainerd({ dir: join(s.dir, "ctd"), proxySnapshotters: { nydus: srv.socket } });
      try {
        const config = join(s.dir, "rafsnap.toml");
        writeFileSync(config, "");
        const args = ["doctor", "--config", config, "--root", srv.root, "--address", srv.socket, "--containerd-config", ctd.configFile];
        const r = await rafsnapCli([...args, "--json"]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const report = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
        expect(report.ok).toBe(true);
        for (const c of report.checks.filter((x) => x.required)) expect(`${c.id}: ${c.status}`).not.toBe(`${c.id}: fail`);
        for (const id of ["config", "root", "d_type", "socket-path", "overlayfs", "serving", "containerd", "containerd-wiring"]) {
          expect(`${id}: ${byId(report.checks, id).status}`).toBe(`${id}: ok`);
        }
        // The harness disables CRI: informative only.
        expect(byId(report.checks, "containerd-cri").status).toBe("warn");

        const text = await rafsnapCli(args);
        expect(text.code).toBe(0);
        expect(text.stdout).toMatch(/^ok {4}containerd-wiring +containerd config .* has \[proxy_plugins\.nydus\]/m);
        expect(text.stdout.trimEnd().split("\n").at(-1)).toMatch(/^\d+ ok, \d+ warnings, 0 failed$/);
      } finally {
        await ctd.stop();
      }
    });
  });

  test("an unwired containerd: the wiring check fails with the fix, exit 1", async () => {
    await withScratch("doctor-unwired", async (s) => {
      const ctd = await startContainerd({ dir: join(s.dir, "ctd") });
      try {
        const root = join(s.dir, "root");
        const r = await rafsnapCli(["doctor", "--root", root, "--address", join(s.dir, "r.sock"), "--containerd-config", ctd.configFile]);
        expect(r.code).toBe(1);
        const line = r.stdout.split("\n").find((l) => l.includes("containerd-wiring")) ?? "";
        expect(line).toStartWith("FAIL");
        expect(line).toContain(`fix: run: rafsnap setup containerd --config ${ctd.configFile} --address ${join(s.dir, "r.sock")}`);
        expect(r.stdout).toMatch(/^ok {4}containerd +containerd is reachable/m);
        expect(r.stdout).toMatch(/^warn {2}serving +nothing is serving/m);
        // A root that does not exist yet is fine: rafsnap creates it.
        expect(r.stdout).toMatch(/^ok {4}root +root .* does not exist yet/m);
      } finally {
        await ctd.stop();
      }
    });
  });

  test("a root on a filesystem without d_type: exit 1 naming d_type", async () => {
    await withScratch("doctor-nodtype", async (s) => {
      const fs = mountNoDTypeFs(s.dir);
      try {
        const root = join(fs.mnt, "root");
        mkdirSync(root, { mode: 0o700 });
        const ctdConfig = join(s.dir, "containerd.toml");
        writeFileSync(ctdConfig, `version = 2\n[proxy_plugins.nydus]\n  type = "snapshot"\n  address = "${join(s.dir, "r.sock")}"\n`);
        const r = await rafsnapCli(["doctor", "--json", "--root", root, "--address", join(s.dir, "r.sock"), "--containerd-config", ctdConfig]);
        expect(r.code).toBe(1);
        const report = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
        expect(report.ok).toBe(false);
        const dtype = byId(report.checks, "d_type");
        expect(dtype.status).toBe("fail");
        expect(dtype.message).toContain("does not support d_type");
        expect(report.checks.filter((c) => c.status === "fail").map((c) => c.id)).toEqual(["d_type"]);
      } finally {
        fs.unmount();
      }
    });
  });
});
