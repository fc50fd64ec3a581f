import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { bindPrivately } from "./socket.ts";

const dir = mkdtempSync(join(tmpdir(), "rafsnap-sock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a socket is bound where only we can reach it, gets its mode, then appears at its path", async () => {
  const path = join(dir, "api.sock");
  const server = await bindPrivately(path, 0o600, (at) => {
    // While binding: inside a private directory, and nothing at the final path yet.
    expect(statSync(dirname(at)).mode & 0o777).toBe(0o700);
    expect(existsSync(path)).toBe(false);
    return Bun.serve({ unix: at, fetch: () => new Response("hi") });
  });
  try {
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["api.sock"]); // the private directory is gone
    const res = await fetch("http://localhost/", { unix: path } as RequestInit);
    expect(await res.text()).toBe("hi");
  } finally {
    server.stop(true);
  }
});

test("a failing bind leaves nothing behind", async () => {
  const path = join(dir, "fails.sock");
  await expect(
    bindPrivately(path, 0o600, () => {
      throw new Error("no");
    }),
  ).rejects.toThrow("no");
  expect(readdirSync(dir).filter((n) => n !== "api.sock")).toEqual([]);
});
