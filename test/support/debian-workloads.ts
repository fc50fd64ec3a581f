// Commands that put the Debian test images (test/harness/debian-images.ts) to real work, for
// comparing how an image runs on different snapshotters. The specs' own Cmds only print a
// greeting; these load many modules and shared libraries, write to the container's rootfs and
// print values derived from it all. Each prints its result lines, then END, and nothing on stderr.
// `verify` checks the printed values against what the test computes itself, so that identical
// but wrong output (say, two runs that both failed the same way) is not taken as success.
import { expect } from "bun:test";
import type { DebianImageKind } from "../harness/debian-images.ts";

/** The last line every workload prints. */
export const WORKLOAD_END = "END";

/** A command for a Debian image and a check of its stdout lines. */
export interface DebianWorkload {
  /** Full command line (replaces the image's entrypoint and Cmd). */
  command: string[];
  /** Throws (bun:test expectations) unless `lines` (stdout, END included) are right. */
  verify(lines: string[]): void;
}

const sha256hex = (s: string | Uint8Array) => new Bun.CryptoHasher("sha256").update(s).digest("hex");

// json, sqlite3, asyncio, email, http.client, decimal and hashlib, each used for something.
const PYTHON = `
import asyncio, decimal, email, email.policy, hashlib, http.client, json, sqlite3, sys
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE t (n INTEGER, sq INTEGER)")
db.executemany("INSERT INTO t VALUES (?, ?)", [(i, i * i) for i in range(1, 101)])
(total,) = db.execute("SELECT sum(sq) FROM t WHERE n % 3 = 0").fetchone()
async def square(n):
    await asyncio.sleep(0.001 * (10 - n))
    return n * n
async def squares():
    return await asyncio.gather(*(square(n) for n in range(10)))
msg = email.message_from_string("From: a@example.org\\nSubject: =?utf-8?q?caf=C3=A9?=\\n\\nbody\\n", policy=email.policy.default)
decimal.getcontext().prec = 40
doc = {
    "python": sys.version.split()[0],
    "sqlite": sqlite3.sqlite_version,
    "sum": total,
    "squares": asyncio.run(squares()),
    "subject": str(msg["subject"]),
    "seventh": str(decimal.Decimal(1) / decimal.Decimal(7)),
    "teapot": http.client.responses[418],
    "conn": type(http.client.HTTPConnection("127.0.0.1", 9)).__name__,
}
text = json.dumps(doc, sort_keys=True)
print(text)
print("sha256", hashlib.sha256(text.encode()).hexdigest())
print("${WORKLOAD_END}")
`;

/** What the node workload serves: 2000 numbered lines. */
const NODE_PAYLOAD = Array.from({ length: 2000 }, (_, i) => `line ${i} ${i * i}`).join("\n");

// crypto, http (a server on 127.0.0.1 and a client of it) and zlib (gzip on the wire).
const NODE = `
const crypto = require("crypto"), http = require("http"), zlib = require("zlib");
const payload = Buffer.from(Array.from({ length: 2000 }, (_, i) => \`line \${i} \${i * i}\`).join("\\n"));
const server = http.createServer((req, res) => {
  res.setHeader("content-encoding", "gzip");
  res.end(zlib.gzipSync(payload, { level: 9 }));
});
server.listen(0, "127.0.0.1", () => {
  http.get({ host: "127.0.0.1", port: server.address().port, path: "/data" }, (res) => {
    const parts = [];
    res.on("data", (c) => parts.push(c));
    res.on("end", () => {
      const body = zlib.gunzipSync(Buffer.concat(parts));
      console.log(JSON.stringify({ node: process.version, status: res.statusCode, encoding: res.headers["content-encoding"], bytes: body.length, same: body.equals(payload) }));
      console.log("sha256", crypto.createHash("sha256").update(body).digest("hex"));
      console.log("hmac", crypto.createHmac("sha256", "rafsnap").update(body).digest("hex"));
      console.log("${WORKLOAD_END}");
      server.close();
    });
  });
});
`;

// A C program written into the container's /tmp, compiled (cc1, as, ld, libc headers) and run.
const GCC = `set -e
cat >/tmp/work.c <<'EOF'
#include <stdint.h>
#include <stdio.h>
#include <string.h>
static uint32_t crc32(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1u));
  }
  return ~c;
}
int main(void) {
  static char composite[100000];
  long sum = 0;
  int count = 0;
  for (long i = 2; i < 100000; i++) {
    if (composite[i]) continue;
    count++;
    sum += i;
    for (long j = i * i; j < 100000; j += i) composite[j] = 1;
  }
  const char *s = "rafsnap";
  printf("gcc %s\\n", __VERSION__);
  printf("primes below 100000: %d, sum %ld\\n", count, sum);
  printf("crc32(%s) = %08x\\n", s, crc32((const unsigned char *)s, strlen(s)));
  return 0;
}
EOF
gcc -O2 -Wall -Werror -o /tmp/work /tmp/work.c
/tmp/work
echo ${WORKLOAD_END}
`;

/** The workload of each {@link DebianImageKind}. */
export const DEBIAN_WORKLOADS: Readonly<Record<DebianImageKind, DebianWorkload>> = Object.freeze({
  python: {
    command: ["python3", "-c", PYTHON],
    verify(lines: string[]) {
      expect(lines).toHaveLength(3);
      const [json = "", sha = "", end] = lines;
      const doc = JSON.parse(json);
      expect(doc.python).toMatch(/^3\.\d+\.\d+$/);
      expect(doc.sqlite).toMatch(/^3\.\d+\.\d+$/);
      expect(doc.sum).toBe(112761); // 9 · (1² + … + 33²)
      expect(doc.squares).toEqual([0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
      expect(doc.subject).toBe("café");
      expect(doc.seventh).toBe("0.1428571428571428571428571428571428571429"); // 40 digits, rounded
      expect(doc.teapot).toBe("I'm a Teapot");
      expect(doc.conn).toBe("HTTPConnection");
      expect(sha).toBe(`sha256 ${sha256hex(json)}`);
      expect(end).toBe(WORKLOAD_END);
    },
  },
  node: {
    command: ["node", "-e", NODE],
    verify(lines: string[]) {
      expect(lines).toHaveLength(4);
      const [json = "", sha, hmac, end] = lines;
      const doc = JSON.parse(json);
      expect(doc.node).toMatch(/^v\d+\.\d+\.\d+$/);
      expect(doc).toMatchObject({ status: 200, encoding: "gzip", bytes: Buffer.byteLength(NODE_PAYLOAD), same: true });
      expect(sha).toBe(`sha256 ${sha256hex(NODE_PAYLOAD)}`);
      expect(hmac).toBe(`hmac ${new Bun.CryptoHasher("sha256", "rafsnap").update(NODE_PAYLOAD).digest("hex")}`);
      expect(end).toBe(WORKLOAD_END);
    },
  },
  gcc: {
    command: ["sh", "-c", GCC],
    verify(lines: string[]) {
      expect(lines).toHaveLength(4);
      const [version, primes, crc, end] = lines;
      expect(version).toMatch(/^gcc \d+\.\d+\.\d+/);
      expect(primes).toBe("primes below 100000: 9592, sum 454396537");
      expect(crc).toBe(`crc32(rafsnap) = ${Bun.hash.crc32("rafsnap").toString(16).padStart(8, "0")}`);
      expect(end).toBe(WORKLOAD_END);
    },
  },
});
