// A token service for the registry's bearer-token auth (distribution's "token" auth): issues
// ES256 JWTs with an x5c header, signed by the test CA, which the registry trusts through its
// rootcertbundle. Users with the right password get what they ask for; anonymous callers get
// pull only.
import { createPrivateKey, createSign } from "node:crypto";
import { readFileSync } from "node:fs";

/** A running token service. */
export interface TokenServer {
  /** The realm URL to configure in the registry. */
  realm: string;
  service: string;
  issuer: string;
  /** Number of tokens issued (to check that clients cache them). */
  issued(): number;
  stop(): void;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** How the token service treats callers. */
export interface TokenServerOptions {
  /** Token lifetime (`exp` and `expires_in`); 300 s by default. */
  ttlSeconds?: number;
  /** Decides a user's password instead of the fixed one (short-lived passwords, as cloud registries issue). */
  accepts?: (name: string, password: string) => boolean;
  /** Whether anonymous callers get pull (default true); false makes every repository private. */
  anonymousPull?: boolean;
}

/**
 * Starts the token service on 127.0.0.1 (random port). `signer` is a certificate and key
 * (PEM paths) that the registry's rootcertbundle contains.
 */
export function startTokenServer(signer: { cert: string; key: string }, user: { name: string; password: string }, opts: TokenServerOptions = {}): TokenServer {
  const ttl = opts.ttlSeconds ?? 300;
  const accepts = opts.accepts ?? ((name: string, password: string) => name === user.name && password === user.password);
  const key = createPrivateKey(readFileSync(signer.key));
  const der = readFileSync(signer.cert, "utf8")
    .replace(/-----[^-]+-----/g, "")
    .replace(/\s+/g, "");
  const service = "rafsnap-test-registry";
  const issuer = "rafsnap-test-issuer";
  let issued = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      const auth = req.headers.get("authorization");
      let subject = "";
      if (auth?.startsWith("Basic ")) {
        const [name, password] = Buffer.from(auth.slice(6), "base64").toString().split(":");
        if (!accepts(name ?? "", password ?? "")) return new Response("bad credentials", { status: 401 });
        subject = name ?? "";
      }
      const access = url.searchParams.getAll("scope").flatMap((scope) => {
        const [type, name, actions] = scope.split(":");
        const wanted = (actions ?? "").split(",").filter(Boolean);
        const granted = subject ? wanted : opts.anonymousPull === false ? [] : wanted.filter((a) => a === "pull");
        return type && name ? [{ type, name, actions: granted }] : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const header = { alg: "ES256", typ: "JWT", x5c: [der] };
      const claims = { iss: issuer, sub: subject, aud: service, exp: now + ttl, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access };
      const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const sig = createSign("SHA256").update(signingInput).sign({ key, dsaEncoding: "ieee-p1363" });
      issued++;
      return Response.json({ token: `${signingInput}.${b64url(sig)}`, expires_in: ttl, issued_at: new Date().toISOString() });
    },
  });
  return {
    realm: `http://127.0.0.1:${server.port}/token`,
    service,
    issuer,
    issued: () => issued,
    stop: () => server.stop(true),
  };
}
