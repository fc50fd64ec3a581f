// Throw-away PKI for TLS tests: a CA and a server certificate for 127.0.0.1, made with openssl.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
}

/** Paths of a generated CA and a server certificate/key signed by it. */
export interface TestPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

/**
 * Creates in `dir` a CA (`ca.pem`) and a certificate for `127.0.0.1`/`localhost`
 * (`server.pem`, `server.key`), EC P-256, valid one day. Throws with openssl's message.
 */
export function makePki(dir: string): TestPki {
  const p = (n: string) => join(dir, n);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], dir);
  openssl(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "1", "-subj", "/CN=rafsnap test CA", "-out", "ca.pem"], dir);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"], dir);
  openssl(["req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr"], dir);
  writeFileSync(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-sha256",
      "-extfile",
      "ext.cnf",
      "-out",
      "server.pem",
    ],
    dir,
  );
  return { caCert: p("ca.pem"), caKey: p("ca.key"), serverCert: p("server.pem"), serverKey: p("server.key") };
}
