import { describe, expect, test } from "bun:test";
import { ErrorKind, RafsnapError } from "../errdefs/index.ts";
import { defaultConfig, parseConfig } from "./schema.ts";
import { REDACTED, configToToml, isSecretKey } from "./toml.ts";

describe("configToToml", () => {
  test("round trip: defaults → TOML → parseConfig gives the defaults", () => {
    const defaults = defaultConfig();
    const text = configToToml(defaults, { redact: true });
    const { config, warnings } = parseConfig(Bun.TOML.parse(text));
    expect(config).toEqual(defaults);
    expect(warnings).toEqual([]);
  });

  test("round trip of a non-default config, including awkward strings", () => {
    const c = defaultConfig();
    c.root = "/srv/rafsnap";
    c.daemon_mode = "none";
    c.daemon.fs_driver = "proxy";
    c.daemon.threads_number = 16;
    c.log.log_rotation_compress = false;
    c.metrics.address = "127.0.0.1:9110";
    c.metrics.collect_interval = "1m30s";
    c.snapshot.nydus_overlayfs_path = 'odd "path"\\with\ttab\nnewline\u0001 é ✓';
    c.experimental.tarfs.export_mode = "layer_block";
    const { config } = parseConfig(Bun.TOML.parse(configToToml(c)));
    expect(config).toEqual(c);
  });

  test("writes top-level keys first, then one [section] per table", () => {
    const text = configToToml(defaultConfig());
    expect(text.startsWith("version = 1\n")).toBe(true);
    expect(text).toContain('\n[daemon]\nnydusd_config = "/etc/nydus/nydusd-config.json"\n');
    expect(text).toContain("\n[system.debug]\n");
    expect(text).toContain("\n[remote.mirrors_config]\n");
    expect(text).toContain("\n[experimental.tarfs]\n");
    expect(text.endsWith('export_mode = ""\n')).toBe(true);
  });

  test("header lines become comments", () => {
    const text = configToToml(defaultConfig(), { header: ["effective configuration", "", "from /etc/x"] });
    expect(text.startsWith("# effective configuration\n#\n# from /etc/x\n\nversion = 1\n")).toBe(true);
    expect(parseConfig(Bun.TOML.parse(text)).config).toEqual(defaultConfig());
  });

  test("escapes strings and quotes keys that are not bare", () => {
    const text = configToToml({ "a b": 'q"\\\u007f', n: 1.5, list: ["x", 2, true], t: {} });
    expect(text.startsWith('"a b" = ')).toBe(true); // a key that is not bare is quoted
    expect(text).toContain("\n[t]\n"); // an empty table keeps its header
    expect(Bun.TOML.parse(text)).toEqual({ "a b": 'q"\\\u007f', n: 1.5, list: ["x", 2, true], t: {} });
  });

  test("values TOML cannot hold are an Internal error naming the key", () => {
    try {
      configToToml({ daemon: { x: undefined } });
      throw new Error("expected a throw");
    } catch (err) {
      expect(err).toBeInstanceOf(RafsnapError);
      expect((err as RafsnapError).kind).toBe(ErrorKind.Internal);
      expect((err as Error).message).toContain("daemon.x");
    }
  });
});

describe("redaction", () => {
  const doc = {
    remote: {
      auth: { enable_cri_keychain: false, kubeconfig_path: "/root/.kube/config", registry_token: "tok123", auth: "" },
      backend: { access_key_secret: "s3cr3t", password: "hunter2", endpoints: ["a"], auth_list: ["u:p", ""] },
    },
  };

  test("replaces non-empty string values of secret keys, by default", () => {
    const text = configToToml(doc);
    expect(text).not.toContain("tok123");
    expect(text).not.toContain("s3cr3t");
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("u:p");
    const back = Bun.TOML.parse(text) as typeof doc;
    expect(back.remote.auth.registry_token).toBe(REDACTED);
    expect(back.remote.backend.access_key_secret).toBe(REDACTED);
    expect(back.remote.backend.password).toBe(REDACTED);
    expect(back.remote.backend.auth_list).toEqual([REDACTED, ""]);
    // Empty strings hide nothing; keys under a table named "auth" are not secret by that alone.
    expect(back.remote.auth.auth).toBe("");
    expect(back.remote.auth.kubeconfig_path).toBe("/root/.kube/config");
    expect(back.remote.backend.endpoints).toEqual(["a"]);
  });

  test("redact: false keeps secrets", () => {
    const back = Bun.TOML.parse(configToToml(doc, { redact: false })) as typeof doc;
    expect(back).toEqual(doc);
  });

  test("isSecretKey matches secret, password, token and auth in the key name", () => {
    for (const k of ["auth", "registry_token", "access_key_secret", "Password", "AUTH_HEADER", "oauth_client"]) {
      expect(isSecretKey(k)).toBe(true);
    }
    for (const k of ["kubeconfig_path", "enable_cri_keychain", "image_service_address", "credential_provider_config"]) {
      expect(isSecretKey(k)).toBe(false);
    }
  });

  test("no key of today's config is redacted", () => {
    const c = defaultConfig();
    c.remote.auth.kubeconfig_path = "/k";
    c.remote.auth.image_service_address = "/run/containerd/containerd.sock";
    c.remote.auth.credential_provider_config = "/etc/kubernetes/cred.yaml";
    expect(configToToml(c)).not.toContain(REDACTED);
  });
});
