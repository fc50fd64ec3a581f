// The release packages, as a node operator gets them: scripts/package.sh builds the deb, the
// rpm and the air-gapped tarball for amd64 and arm64 once (beforeAll, --fast compression);
// the tests inspect them with dpkg-deb, lintian, rpm and systemd-analyze, install the deb on
// this machine (root only; the machine is restored afterwards, even on failure), run
// install.sh into temporary prefixes and run the arm64 binary under qemu-aarch64-static.
// A missing tool fails the test that needs it with the Debian package to install.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

const REPO = join(import.meta.dir, "../..");
const VERSION: string = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version;
const PKGVER = VERSION.replace("-", "~");
const OUT = join(REPO, "dist/packages");
const HOST = process.arch === "arm64" ? "arm64" : "amd64";
const ARCHES = ["amd64", "arm64"] as const;
type Arch = (typeof ARCHES)[number];
const RPMARCH: Record<Arch, string> = { amd64: "x86_64", arm64: "aarch64" };
const deb = (a: Arch) => join(OUT, `rafsnap_${PKGVER}_${a}.deb`);
const rpmFile = (a: Arch) => join(OUT, `rafsnap-${PKGVER}-1.${RPMARCH[a]}.rpm`);
const tarball = (a: Arch) => join(OUT, `rafsnap-${VERSION}-linux-${a}.tar.gz`);
const DEFAULT_ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.nydus";
const AARCH64_SYSROOT = "/usr/aarch64-linux-gnu";
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] test/packaging: installing the deb on this machine needs root; run it as root as CI does");

interface Result {
  code: number;
  out: string;
  err: string;
}

/** Runs `cmd` to completion (no shell); stdout and stderr as text. */
function sh(cmd: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Result {
  const r = Bun.spawnSync(cmd, {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, LC_ALL: "C.UTF-8", ...opts.env },
    stdin: "ignore",
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** Like {@link sh}, and throws with the output when the exit code is not 0. */
function ok(cmd: string[], opts: Parameters<typeof sh>[1] = {}): string {
  const r = sh(cmd, opts);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}\n${r.out}\n${r.err}`);
  return r.out;
}

/** Throws "<tool> not found: apt-get install <package>" when a tool is missing. */
function need(tool: string, debianPackage: string): void {
  const found = tool.startsWith("/") ? existsSync(tool) : Bun.which(tool) !== null;
  if (!found) throw new Error(`${tool} not found: apt-get install ${debianPackage} (or bash scripts/deps.sh)`);
}

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Every path under `dir` (files, links, not directories), relative, sorted. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

const mode = (p: string) => (lstatSync(p).mode & 0o7777).toString(8);

/** The directives of a systemd unit as "Section.Key" → values. */
function unitDirectives(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const s = line.match(/^\[(.+)\]$/);
    if (s) {
      section = s[1] as string;
      continue;
    }
    const i = line.indexOf("=");
    const key = `${section}.${line.slice(0, i).trim()}`;
    m.set(key, [...(m.get(key) ?? []), line.slice(i + 1).trim()]);
  }
  return m;
}

/**
 * Runs a maintainer script (deb) or scriptlet (rpm) with a fake `systemctl` on PATH that logs
 * its arguments; `systemdRunning` points the script's /run/systemd/system test at an existing
 * or a missing directory. Returns the systemctl calls.
 */
function systemctlCalls(script: string, args: string[], systemdRunning: boolean): string[] {
  const dir = tempDir("rafsnap-scripts-");
  try {
    const bin = join(dir, "bin");
    mkdirSync(bin);
    const log = join(dir, "systemctl.log");
    writeFileSync(join(bin, "systemctl"), `#!/bin/sh\necho "$*" >> '${log}'\n`);
    chmodSync(join(bin, "systemctl"), 0o755);
    const running = join(dir, "run-systemd-system");
    if (systemdRunning) mkdirSync(running);
    // Paths the scripts touch on purge are redirected into the temp dir as well.
    const body = script
      .replaceAll("/run/systemd/system", running)
      .replaceAll("/etc/systemd/system", join(dir, "etc-systemd"))
      .replaceAll("/etc/containerd-nydus", join(dir, "etc-containerd-nydus"))
      .replaceAll(DEFAULT_ROOT, join(dir, "state"));
    writeFileSync(join(dir, "script"), body);
    ok(["sh", join(dir, "script"), ...args], { env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` } });
    return existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : [];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let buildError: Error | undefined;
/** sha256 of the binary in each tarball: the deb and rpm must carry the very same bytes. */
const tarballBinarySha = new Map<Arch, string>();

function sha256(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}

beforeAll(() => {
  try {
    need("dpkg-deb", "dpkg");
    need("rpmbuild", "rpm");
    ok(["bash", "scripts/package.sh", "--arch", "all", "--fast"], { timeoutMs: 170_000 });
    for (const a of ARCHES) {
      const line = ok(["tar", "-xzf", tarball(a), "-O", `rafsnap-${VERSION}-linux-${a}/SHA256SUMS`])
        .split("\n")
        .find((l) => l.endsWith("  rafsnap"));
      tarballBinarySha.set(a, line?.split(" ")[0] ?? "");
    }
  } catch (e) {
    buildError = e as Error;
  }
}, 180_000);

/** Fails the calling test with package.sh's error when the build failed. */
function built(): void {
  if (buildError) throw buildError;
}

describe("scripts/package.sh", () => {
  test("builds the deb, rpm and tarball of both architectures with a SHA256SUMS", () => {
    built();
    for (const a of ARCHES) for (const f of [deb(a), rpmFile(a), tarball(a)]) expect(existsSync(f)).toBe(true);
    const sums = readFileSync(join(OUT, "SHA256SUMS"), "utf8");
    for (const a of ARCHES) expect(sums).toContain(`rafsnap_${PKGVER}_${a}.deb`);
    ok(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], { cwd: OUT });
  });

  test("rejects an unknown architecture", () => {
    const r = sh(["bash", "scripts/package.sh", "--arch", "riscv64"]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("--arch must be amd64, arm64 or all");
  });
});

describe("deb", () => {
  test.each(ARCHES)("control fields, conffiles and maintainer scripts (%s)", (a) => {
    built();
    need("dpkg-deb", "dpkg");
    const field = (f: string) => ok(["dpkg-deb", "--field", deb(a), f]).trim();
    expect(field("Package")).toBe("rafsnap");
    expect(field("Version")).toBe(PKGVER);
    expect(field("Architecture")).toBe(a);
    expect(field("Depends")).toBe("libc6 (>= 2.17)");
    expect(field("Recommends")).toBe("containerd");
    expect(field("Section")).toBe("admin");
    expect(field("Priority")).toBe("optional");
    expect(field("Maintainer")).toMatch(/^.+ <[^@\s]+@[^@\s]+>$/);
    expect(field("Description")).toStartWith("containerd remote snapshotter");
    const info = ok(["dpkg-deb", "--info", deb(a)]);
    for (const s of ["postinst", "prerm", "postrm"]) expect(info).toMatch(new RegExp(`\\d+ bytes, +\\d+ lines +\\* +${s} +#!/bin/sh`));
    expect(ok(["dpkg-deb", "--info", deb(a), "conffiles"]).trim()).toBe("/etc/containerd-nydus/config.toml");
  });

  test.each(ARCHES)("files, modes and links (%s)", (a) => {
    built();
    need("dpkg-deb", "dpkg");
    const lines = ok(["dpkg-deb", "--contents", deb(a)])
      .trim()
      .split("\n");
    const entry = new Map<string, { perms: string; owner: string; link?: string }>();
    for (const l of lines) {
      const m = l.match(/^(\S+) (\S+) +\d+ \S+ \S+ \.(\/\S*?)(?: -> (\S+))?$/);
      if (!m) throw new Error(`unexpected dpkg-deb --contents line: ${l}`);
      entry.set(m[3] as string, { perms: m[1] as string, owner: m[2] as string, link: m[4] });
    }
    const expectFile = (p: string, perms: string) => expect({ p, ...entry.get(p) }).toEqual({ p, perms, owner: "root/root" });
    expectFile("/usr/bin/rafsnap", "-rwxr-xr-x");
    expectFile("/etc/containerd-nydus/config.toml", "-rw-r--r--");
    expectFile("/lib/systemd/system/rafsnap.service", "-rw-r--r--");
    expectFile("/usr/share/man/man8/rafsnap.8.gz", "-rw-r--r--");
    expectFile("/usr/share/doc/rafsnap/copyright", "-rw-r--r--");
    expectFile("/usr/share/doc/rafsnap/changelog.gz", "-rw-r--r--");
    expectFile("/usr/share/lintian/overrides/rafsnap", "-rw-r--r--");
    for (const l of ["containerd-nydus-grpc", "nydusd"]) {
      expect(entry.get(`/usr/libexec/rafsnap/${l}`)).toEqual({ perms: "lrwxrwxrwx", owner: "root/root", link: "../../bin/rafsnap" });
    }
    // Nothing that would collide with a nydus installation, nothing under /tmp or /usr/local.
    for (const p of entry.keys()) expect(p).not.toMatch(/^\/(tmp|usr\/local)\/|^\/usr\/bin\/(nydusd|containerd-nydus-grpc)$/);
  });

  test("the packaged binary is the tarball's (unstripped) and runs; the config is its default", () => {
    built();
    need("dpkg-deb", "dpkg");
    const dir = tempDir("rafsnap-deb-x-");
    try {
      ok(["dpkg-deb", "-x", deb(HOST), dir]);
      const bin = join(dir, "usr/bin/rafsnap");
      expect(sha256(bin)).toBe(tarballBinarySha.get(HOST) as string);
      expect(ok([bin, "version"])).toStartWith(`rafsnap ${VERSION}\n`);
      const config = readFileSync(join(dir, "etc/containerd-nydus/config.toml"), "utf8");
      expect(config).toBe(ok([bin, "config", "--default"]));
      expect(config).toContain('nydusd_path = "/usr/libexec/rafsnap/nydusd"');
      expect(config).toContain(`root = "${DEFAULT_ROOT}"`);
      expect(config).toContain('address = "/run/containerd-nydus/containerd-nydus-grpc.sock"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("maintainer scripts call systemctl only when systemd runs, and never start or enable", () => {
    built();
    need("dpkg-deb", "dpkg");
    const dir = tempDir("rafsnap-deb-ctl-");
    try {
      ok(["dpkg-deb", "-e", deb(HOST), dir]);
      const s = (n: string) => readFileSync(join(dir, n), "utf8");
      for (const n of ["postinst", "prerm", "postrm"]) expect(mode(join(dir, n))).toBe("755");
      // No systemd (containers, chroots, other inits): no systemctl at all.
      for (const [n, args] of [
        ["postinst", ["configure", ""]],
        ["postinst", ["configure", "0.0.1"]],
        ["prerm", ["remove"]],
        ["prerm", ["upgrade", "9.9.9"]],
        ["postrm", ["remove"]],
        ["postrm", ["purge"]],
      ] as const) {
        expect({ n, args, calls: systemctlCalls(s(n), [...args], false) }).toEqual({ n, args, calls: [] });
      }
      // systemd running: reload; restart only on upgrade (and only if running); disable on remove.
      expect(systemctlCalls(s("postinst"), ["configure", ""], true)).toEqual(["daemon-reload"]);
      expect(systemctlCalls(s("postinst"), ["configure", "0.0.1"], true)).toEqual(["daemon-reload", "try-restart rafsnap.service"]);
      expect(systemctlCalls(s("prerm"), ["upgrade", "9.9.9"], true)).toEqual([]);
      expect(systemctlCalls(s("prerm"), ["remove"], true)).toEqual(["disable --now rafsnap.service"]);
      expect(systemctlCalls(s("postrm"), ["remove"], true)).toEqual(["daemon-reload"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("lintian reports no errors (amd64, arm64)", async () => {
    built();
    need("lintian", "lintian");
    const runs = ARCHES.map(async (a) => {
      const p = Bun.spawn(["lintian", "--tag-display-limit", "0", deb(a)], { stdout: "pipe", stderr: "pipe" });
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
      await p.exited;
      const errors = out.split("\n").filter((l) => l.startsWith("E:"));
      return { a, errors, err: err.replace(/^running with root privileges is not recommended!\n/m, "") };
    });
    expect(await Promise.all(runs)).toEqual(ARCHES.map((a) => ({ a, errors: [], err: "" })));
  }, 90_000);
});

describe("rpm", () => {
  test.each(ARCHES)("header, files, config and scriptlets (%s)", (a) => {
    built();
    need("rpm", "rpm");
    const q = (...args: string[]) => ok(["rpm", "-qp", ...args, rpmFile(a)]);
    const info = q("-i");
    expect(info).toMatch(/^Name +: rafsnap$/m);
    expect(info).toMatch(new RegExp(`^Version +: ${PKGVER}$`, "m"));
    expect(info).toMatch(/^Release +: 1$/m);
    expect(info).toMatch(new RegExp(`^Architecture: ${RPMARCH[a]}$`, "m"));
    expect(info).toMatch(/^License +: Apache-2.0$/m);
    const files = new Map<string, string>();
    for (const l of q("-lv").trim().split("\n")) {
      const f = l.split(/\s+/);
      files.set(f[8] as string, `${f[0]} ${f[2]}:${f[3]}${f[10] ? ` -> ${f[10]}` : ""}`);
    }
    expect(files.get("/usr/bin/rafsnap")).toBe("-rwxr-xr-x root:root");
    expect(files.get("/etc/containerd-nydus/config.toml")).toBe("-rw-r--r-- root:root");
    expect(files.get("/usr/lib/systemd/system/rafsnap.service")).toBe("-rw-r--r-- root:root");
    expect(files.get("/usr/libexec/rafsnap/containerd-nydus-grpc")).toBe("lrwxrwxrwx root:root -> ../../bin/rafsnap");
    expect(files.get("/usr/libexec/rafsnap/nydusd")).toBe("lrwxrwxrwx root:root -> ../../bin/rafsnap");
    expect(files.has("/usr/share/man/man8/rafsnap.8.gz")).toBe(true);
    expect([...files.keys()].filter((p) => p.includes(".build-id") || p.includes("debug"))).toEqual([]);
    expect(q("--configfiles").trim()).toBe("/etc/containerd-nydus/config.toml");
    // %config(noreplace): flags "n" (noreplace) and "c" (config).
    expect(q("--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]")).toContain("/etc/containerd-nydus/config.toml cn");
    const scripts = q("--scripts");
    for (const s of ["postinstall", "preuninstall", "postuninstall"]) expect(scripts).toContain(`${s} scriptlet (using /bin/sh):`);
    expect(q("--requires")).toContain("glibc >= 2.17");
    expect(q("--recommends").trim()).toBe("containerd");
  });

  test("scriptlets call systemctl only when systemd runs, and never start or enable", () => {
    built();
    need("rpm", "rpm");
    const tag = (t: string) => ok(["rpm", "-qp", "--qf", `%{${t}}`, rpmFile(HOST)]);
    const [post, preun, postun] = [tag("POSTIN"), tag("PREUN"), tag("POSTUN")];
    for (const [s, arg] of [
      [post, "1"],
      [post, "2"],
      [preun, "0"],
      [preun, "1"],
      [postun, "0"],
      [postun, "1"],
    ] as const) {
      expect({ s, arg, calls: systemctlCalls(s, [arg], false) }).toEqual({ s, arg, calls: [] });
    }
    expect(systemctlCalls(post, ["1"], true)).toEqual(["daemon-reload"]);
    expect(systemctlCalls(post, ["2"], true)).toEqual(["daemon-reload", "try-restart rafsnap.service"]);
    expect(systemctlCalls(preun, ["1"], true)).toEqual([]);
    expect(systemctlCalls(preun, ["0"], true)).toEqual(["disable --now rafsnap.service"]);
    expect(systemctlCalls(postun, ["0"], true)).toEqual(["daemon-reload"]);
  });

  test("installs into an rpm root; the binary is not stripped and still runs", () => {
    built();
    need("rpm", "rpm");
    const root = tempDir("rafsnap-rpmroot-");
    try {
      ok(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb"]);
      ok(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts", rpmFile(HOST)]);
      expect(sha256(join(root, "usr/bin/rafsnap"))).toBe(tarballBinarySha.get(HOST) as string);
      // rpm -V: every installed file has the digest, mode and owner the package recorded.
      ok(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-V", "--nodeps", "--noscripts", "rafsnap"]);
      expect(ok([join(root, "usr/bin/rafsnap"), "version"])).toStartWith(`rafsnap ${VERSION}\n`);
      expect(ok([join(root, "usr/libexec/rafsnap/containerd-nydus-grpc"), "--version"])).toMatch(/^Version:\s+v?\S+/m);
      // The other architecture's rpm carries its tarball's binary too (files only).
      const other: Arch = HOST === "amd64" ? "arm64" : "amd64";
      const root2 = join(root, "other");
      ok(["rpm", "--root", root2, "--dbpath", "/var/lib/rpm", "--initdb"]);
      ok(["rpm", "--root", root2, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts", "--ignorearch", rpmFile(other)]);
      expect(sha256(join(root2, "usr/bin/rafsnap"))).toBe(tarballBinarySha.get(other) as string);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("systemd unit", () => {
  const unit = readFileSync(join(REPO, "packaging/rafsnap.service"), "utf8");

  test("has the directives the snapshotter needs", () => {
    const d = unitDirectives(unit);
    const one = (k: string) => d.get(k)?.join(" | ");
    expect(one("Service.Type")).toBe("simple");
    expect(one("Service.ExecStart")).toBe("/usr/bin/rafsnap serve --config /etc/containerd-nydus/config.toml");
    expect(one("Service.KillMode")).toBe("process");
    expect(one("Service.Restart")).toBe("always");
    expect(one("Service.RestartSec")).toBe("1");
    expect(one("Service.OOMScoreAdjust")).toBe("-999");
    expect(one("Service.LimitNOFILE")).toBe("1048576");
    expect(one("Unit.Before")).toBe("containerd.service");
    expect(one("Unit.After")).toBe("network.target local-fs.target");
    expect(one("Install.WantedBy")).toBe("multi-user.target");
    expect(d.has("Service.PrivateTmp")).toBe(false);
    expect(unit).not.toMatch(/\/tmp\b/);
  });

  test("systemd-analyze verify accepts it", () => {
    need("systemd-analyze", "systemd");
    const dir = tempDir("rafsnap-unit-");
    try {
      // verify checks that ExecStart exists: point it at dist/'s binary. The man page is
      // checked once the deb is installed (below).
      const copy = unit.replace("ExecStart=/usr/bin/rafsnap", `ExecStart=${join(REPO, "dist/rafsnap")}`);
      writeFileSync(join(dir, "rafsnap.service"), copy);
      const r = sh(["systemd-analyze", "verify", "--man=no", join(dir, "rafsnap.service")]);
      expect({ code: r.code, err: r.err.trim() }).toEqual({ code: 0, err: "" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!isRoot)("deb on this machine (dpkg -i, -r, -P)", () => {
  const CONFIG = "/etc/containerd-nydus/config.toml";
  // "ii" installed, "rc" removed with config files left; "" unknown or purged ("pn").
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format, not a template
  const pkgState = () => sh(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "rafsnap"]).out.trim().replace(/^pn$/, "");
  const rootExisted = existsSync(DEFAULT_ROOT);
  const parentExisted = existsSync(dirname(DEFAULT_ROOT));
  let locker: ReturnType<typeof Bun.spawn> | undefined;
  let preflight: Error | undefined;

  beforeAll(() => {
    // Never clobber a real installation or configuration.
    if (pkgState() !== "") preflight = new Error("a rafsnap package is already installed on this machine; remove it first");
    else if (existsSync("/etc/containerd-nydus")) preflight = new Error("/etc/containerd-nydus exists on this machine; move it away first");
    else if (existsSync("/usr/bin/rafsnap")) preflight = new Error("/usr/bin/rafsnap exists on this machine; move it away first");
  });

  afterAll(() => {
    if (!preflight && pkgState() !== "") sh(["dpkg", "--purge", "rafsnap"]);
    if (!preflight) rmSync("/etc/containerd-nydus", { recursive: true, force: true });
    if (locker) locker.kill();
    if (!rootExisted && !preflight) {
      rmSync(DEFAULT_ROOT, { recursive: true, force: true });
      if (!parentExisted) {
        try {
          rmdirSync(dirname(DEFAULT_ROOT)); // only if empty: others may have started using it
        } catch {}
      }
    }
  });

  const dpkg = (...args: string[]) => ok(["dpkg", "--force-confold", ...args], { env: { DEBIAN_FRONTEND: "noninteractive" } });

  test("installs; rafsnap and the drop-in links run from the installed paths; the unit verifies", () => {
    built();
    if (preflight) throw preflight;
    need("dpkg", "dpkg");
    need("systemd-analyze", "systemd");
    const out = dpkg("-i", deb(HOST));
    expect(pkgState()).toBe("ii");
    expect(out).toContain("systemctl enable --now rafsnap"); // the hint; nothing was started
    expect(ok(["/usr/bin/rafsnap", "version"])).toStartWith(`rafsnap ${VERSION}\n`);
    expect(ok(["/usr/libexec/rafsnap/containerd-nydus-grpc", "--version"])).toMatch(/^Version:\s+v?\d/m);
    expect(readlinkSync("/usr/libexec/rafsnap/nydusd")).toBe("../../bin/rafsnap");
    expect(mode("/usr/bin/rafsnap")).toBe("755");
    expect(mode(CONFIG)).toBe("644");
    expect(mode("/lib/systemd/system/rafsnap.service")).toBe("644");
    // With the man page installed, verify checks Documentation= as well.
    const v = sh(["systemd-analyze", "verify", "/lib/systemd/system/rafsnap.service"]);
    expect({ code: v.code, err: v.err.trim() }).toEqual({ code: 0, err: "" });
    // The installed config is valid for the installed binary.
    expect(ok(["/usr/bin/rafsnap", "config", "--config", CONFIG])).toContain('nydusd_path = "/usr/libexec/rafsnap/nydusd"');
  });

  test("rafsnap doctor runs from the installed path", () => {
    built();
    if (preflight) throw preflight;
    const r = sh(["/usr/bin/rafsnap", "doctor"], { timeoutMs: 60_000 });
    // doctor exits 1 when the node lacks something (this CI machine may); 2 would be a usage error.
    expect({ code: r.code === 0 || r.code === 1, usage: /Unknown command/.test(r.err) }).toEqual({ code: true, usage: false });
    expect((r.out + r.err).length).toBeGreaterThan(0);
  }, 90_000);

  test("a changed config survives reinstall and dpkg -r; dpkg -P removes config and state", () => {
    built();
    if (preflight) throw preflight;
    appendFileSync(CONFIG, "# changed by the administrator\n");
    dpkg("-i", deb(HOST));
    expect(readFileSync(CONFIG, "utf8")).toEndWith("# changed by the administrator\n");

    dpkg("-r", "rafsnap");
    expect(pkgState()).toBe("rc");
    expect(existsSync("/usr/bin/rafsnap")).toBe(false);
    expect(existsSync("/usr/libexec/rafsnap")).toBe(false);
    expect(readFileSync(CONFIG, "utf8")).toEndWith("# changed by the administrator\n");

    // State at the default root: purge removes it unless it is in use (rafsnap.lock held).
    if (!rootExisted) {
      mkdirSync(join(DEFAULT_ROOT, "snapshots/1/fs"), { recursive: true });
      writeFileSync(join(DEFAULT_ROOT, "rafsnap.db"), "");
    } else {
      // Someone's real state: hold its lock so that purge must keep it.
      locker = Bun.spawn(["flock", "-n", join(DEFAULT_ROOT, "rafsnap.lock"), "sleep", "300"], { stdout: "ignore", stderr: "ignore" });
      Bun.sleepSync(300);
    }
    const purge = sh(["dpkg", "--purge", "rafsnap"]);
    expect(purge.code).toBe(0);
    expect(pkgState()).toBe("");
    expect(existsSync("/etc/containerd-nydus")).toBe(false);
    if (!rootExisted) expect(existsSync(DEFAULT_ROOT)).toBe(false);
    else {
      expect(existsSync(DEFAULT_ROOT)).toBe(true);
      if (existsSync(join(DEFAULT_ROOT, "rafsnap.db"))) expect(purge.err).toContain(`rafsnap: kept ${DEFAULT_ROOT}`);
    }
  });
});

describe("install.sh from the release tarball", () => {
  const work = tempDir("rafsnap-installsh-");
  const extracted = join(work, `rafsnap-${VERSION}-linux-${HOST}`);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** A fresh copy of the extracted tarball (for tests that modify it). */
  function copyOfRelease(name: string): string {
    const d = join(work, name);
    cpSync(extracted, d, { recursive: true });
    return d;
  }
  const install = (dir: string, ...args: string[]) => sh(["bash", join(dir, "install.sh"), ...args], { cwd: work });

  test("the tarballs hold install.sh, the binary, unit, config, man page, docs and SHA256SUMS", () => {
    built();
    for (const a of ARCHES) {
      const names = ok(["tar", "-tzf", tarball(a)])
        .trim()
        .split("\n");
      const top = `rafsnap-${VERSION}-linux-${a}/`;
      for (const f of ["install.sh", "rafsnap", "rafsnap.service", "config.toml", "rafsnap.8", "SHA256SUMS", "docs/README.md"]) {
        expect(names).toContain(top + f);
      }
      expect(names.every((n) => n.startsWith(top))).toBe(true);
    }
    ok(["tar", "-xzf", tarball(HOST), "-C", work]);
    ok(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], { cwd: extracted });
    expect(mode(join(extracted, "install.sh"))).toBe("755");
    expect(mode(join(extracted, "rafsnap"))).toBe("755");
  });

  test("--help", () => {
    const r = install(REPO, "--help");
    expect(r.code).toBe(0);
    for (const o of ["--prefix", "--no-systemd", "--configure-containerd", "--uninstall"]) expect(r.out).toContain(o);
    expect(install(REPO, "--bogus").code).toBe(2);
  });

  test("installs into a prefix, idempotently, then --uninstall leaves only the configuration", () => {
    built();
    const prefix = join(work, "p1");
    const first = install(extracted, "--prefix", prefix);
    expect(first.code).toBe(0);
    const expected = [
      "etc/containerd-nydus/config.toml",
      "usr/bin/rafsnap",
      "usr/lib/systemd/system/rafsnap.service",
      "usr/libexec/rafsnap/containerd-nydus-grpc",
      "usr/libexec/rafsnap/nydusd",
      "usr/share/man/man8/rafsnap.8.gz",
      "var/lib/rafsnap/install-manifest",
    ];
    const files = filesUnder(prefix);
    for (const f of expected) expect(files).toContain(f);
    expect(files.filter((f) => f.startsWith("usr/share/doc/rafsnap/"))).toContain("usr/share/doc/rafsnap/README.md");
    expect(mode(join(prefix, "usr/bin/rafsnap"))).toBe("755");
    expect(mode(join(prefix, "etc/containerd-nydus/config.toml"))).toBe("644");
    expect(mode(join(prefix, "usr/lib/systemd/system/rafsnap.service"))).toBe("644");
    expect(readlinkSync(join(prefix, "usr/libexec/rafsnap/containerd-nydus-grpc"))).toBe("../../bin/rafsnap");
    expect(ok([join(prefix, "usr/bin/rafsnap"), "version"])).toStartWith(`rafsnap ${VERSION}\n`);
    expect(ok([join(prefix, "usr/libexec/rafsnap/containerd-nydus-grpc"), "--version"])).toMatch(/^Version:/m);
    expect(readFileSync(join(prefix, "etc/containerd-nydus/config.toml"), "utf8")).toBe(readFileSync(join(extracted, "config.toml"), "utf8"));

    const snapshot = () => filesUnder(prefix).map((f) => `${f} ${lstatSync(join(prefix, f)).mtimeMs} ${lstatSync(join(prefix, f)).ino}`);
    const before = snapshot();
    const second = install(extracted, "--prefix", prefix);
    expect(second.code).toBe(0);
    expect(second.out).toContain("nothing changed");
    expect(snapshot()).toEqual(before);

    const un = install(extracted, "--prefix", prefix, "--uninstall");
    expect(un.code).toBe(0);
    expect(filesUnder(prefix)).toEqual(["etc/containerd-nydus/config.toml"]);
    expect(un.out).toContain(`kept the configuration: ${prefix}/etc/containerd-nydus/`);
    expect(un.out).toContain(`${prefix}${DEFAULT_ROOT}`);
    const again = install(extracted, "--prefix", prefix, "--uninstall");
    expect(again.code).toBe(0);
    expect(again.out).toContain("nothing to uninstall");
  });

  test("never overwrites a changed config; --no-systemd installs no unit", () => {
    built();
    const prefix = join(work, "p2");
    expect(install(extracted, "--prefix", prefix).code).toBe(0);
    const cfg = join(prefix, "etc/containerd-nydus/config.toml");
    appendFileSync(cfg, "# mine\n");
    const r = install(extracted, "--prefix", prefix, "--no-systemd");
    expect(r.code).toBe(0);
    expect(readFileSync(cfg, "utf8")).toEndWith("# mine\n");
    expect(readFileSync(`${cfg}.rafsnap-new`, "utf8")).toBe(readFileSync(join(extracted, "config.toml"), "utf8"));
    expect(r.out).toContain("kept your changed");
    expect(existsSync(join(prefix, "usr/lib/systemd/system/rafsnap.service"))).toBe(false);
    expect(install(extracted, "--prefix", prefix, "--no-systemd").out).toContain("nothing changed");
    expect(install(extracted, "--prefix", prefix, "--uninstall").code).toBe(0);
    expect(filesUnder(prefix)).toEqual(["etc/containerd-nydus/config.toml", "etc/containerd-nydus/config.toml.rafsnap-new"]);
  });

  test("refuses a tampered or incomplete release", () => {
    built();
    const tampered = copyOfRelease("tampered");
    appendFileSync(join(tampered, "config.toml"), 'root = "/evil"\n');
    const prefix = join(work, "p3");
    const r = install(tampered, "--prefix", prefix);
    expect(r.code).toBe(1);
    expect(r.err).toContain("checksum verification failed");
    expect(filesUnder(prefix)).toEqual([]);

    const unlisted = copyOfRelease("unlisted");
    const sums = readFileSync(join(unlisted, "SHA256SUMS"), "utf8");
    writeFileSync(
      join(unlisted, "SHA256SUMS"),
      sums
        .split("\n")
        .filter((l) => !l.endsWith("  rafsnap"))
        .join("\n"),
    );
    const u = install(unlisted, "--prefix", prefix);
    expect(u.code).toBe(1);
    expect(u.err).toContain("rafsnap is not listed in");
    expect(filesUnder(prefix)).toEqual([]);
  });

  test("--configure-containerd runs rafsnap setup containerd --cri on the prefix's containerd config", () => {
    built();
    const prefix = join(work, "p4");
    const r = install(extracted, "--prefix", prefix, "--configure-containerd");
    expect({ code: r.code, err: r.err }).toMatchObject({ code: 0 });
    expect(r.out).toContain(`rafsnap setup containerd --cri --config ${prefix}/etc/containerd/config.toml`);
    const ctd = readFileSync(join(prefix, "etc/containerd/config.toml"), "utf8");
    expect(ctd).toContain("[proxy_plugins.nydus]");
    expect(ctd).toContain('snapshotter = "nydus"');
  });

  test("--configure-containerd fails clearly when rafsnap has no setup command", () => {
    built();
    const old = copyOfRelease("no-setup");
    // A rafsnap without `setup` (as before it existed): citty's "Unknown command", exit 2.
    writeFileSync(join(old, "rafsnap"), '#!/bin/sh\ncase "$1" in version) echo "rafsnap 0.0.1";; *) echo "rafsnap: Unknown command $1" >&2; exit 2;; esac\n');
    ok(["sh", "-c", "find . -type f ! -name SHA256SUMS -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS"], { cwd: old });
    const r = install(old, "--prefix", join(work, "p5"), "--configure-containerd");
    expect(r.code).toBe(1);
    expect(r.err).toContain("has no 'setup containerd' command");
  });
});

describe("arm64", () => {
  const arm = join(REPO, HOST === "arm64" ? "dist/rafsnap" : "dist/rafsnap-arm64");

  test("the arm64 binary is AArch64 and runs `rafsnap version` under qemu-aarch64-static", () => {
    built();
    need("qemu-aarch64-static", "qemu-user-static");
    need(`${AARCH64_SYSROOT}/lib/ld-linux-aarch64.so.1`, "libc6-arm64-cross");
    // e_machine 183 = EM_AARCH64.
    expect(readFileSync(arm).readUInt16LE(18)).toBe(183);
    // qemu is called explicitly: no binfmt_misc registration is needed. -L: the aarch64
    // glibc the binary links against (libc6-arm64-cross).
    const r = sh(["qemu-aarch64-static", "-L", AARCH64_SYSROOT, arm, "version"], { timeoutMs: 60_000 });
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
    expect(r.out).toStartWith(`rafsnap ${VERSION}\n`);
  }, 90_000);

  test("the arm64 deb and tarball carry that binary", () => {
    built();
    need("dpkg-deb", "dpkg");
    const dir = tempDir("rafsnap-deb-arm64-");
    try {
      ok(["dpkg-deb", "-x", deb("arm64"), dir]);
      expect(sha256(join(dir, "usr/bin/rafsnap"))).toBe(tarballBinarySha.get("arm64") as string);
      // package.sh is the only writer of dist/rafsnap-arm64 (no concurrent bun run build).
      expect(sha256(arm)).toBe(tarballBinarySha.get("arm64") as string);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
