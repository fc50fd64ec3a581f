// Errors thrown by the layers below the service, as real operations throw them, and the
// status code and message containerd gets for each.
import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { dataLoss, notFound, resourceExhausted } from "../errdefs/index.ts";
import { codeOf, toServiceError } from "./errors.ts";
import { thrown } from "../../test/support/failure.ts";

describe("status codes of errors from every layer", () => {
  const dir = mkdtempSync(join(tmpdir(), "rafsnap-errors-"));
  const file = join(dir, "a-file");
  writeFileSync(file, "x");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("file system errors: a missing or misplaced file is FAILED_PRECONDITION with the call named, never NOT_FOUND", () => {
    const missing = thrown(() => readFileSync(join(dir, "snapshots", "12", "fs", "x")));
    expect(codeOf(missing)).toBe(status.FAILED_PRECONDITION);
    const e = toServiceError(missing, 'Prepare key="k"');
    expect(e.message).toStartWith('Prepare key="k": ENOENT');
    expect(codeOf(thrown(() => mkdirSync(join(file, "sub"))))).toBe(status.FAILED_PRECONDITION); // ENOTDIR
    expect(codeOf(thrown(() => mkdirSync(dir)))).toBe(status.FAILED_PRECONDITION); // EEXIST
    expect(codeOf(thrown(() => readFileSync(join(dir, "x".repeat(300)))))).toBe(status.INVALID_ARGUMENT); // ENAMETOOLONG
    expect(codeOf(Object.assign(new Error("no space"), { code: "ENOSPC" }))).toBe(status.RESOURCE_EXHAUSTED);
    expect(codeOf(Object.assign(new Error("quota"), { code: "EDQUOT" }))).toBe(status.RESOURCE_EXHAUSTED);
    expect(codeOf(Object.assign(new Error("denied"), { code: "EACCES" }))).toBe(status.PERMISSION_DENIED);
    expect(codeOf(Object.assign(new Error("io"), { code: "EIO" }))).toBe(status.DATA_LOSS);
  });

  test("SQLite errors: a read-only database is FAILED_PRECONDITION, extended codes by their primary code", () => {
    const path = join(dir, "m.db");
    const rw = new Database(path, { create: true });
    rw.run("CREATE TABLE t (k TEXT PRIMARY KEY)");
    rw.run("INSERT INTO t VALUES ('a')");
    const dup = thrown(() => rw.run("INSERT INTO t VALUES ('a')"));
    expect((dup as { code: string }).code).toStartWith("SQLITE_CONSTRAINT");
    expect(codeOf(dup)).toBe(status.FAILED_PRECONDITION);
    rw.close();
    chmodSync(path, 0o444);
    const ro = new Database(path, { readonly: true });
    const write = thrown(() => ro.run("INSERT INTO t VALUES ('b')"));
    expect(codeOf(write)).toBe(status.FAILED_PRECONDITION);
    ro.close();
    expect(codeOf(Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR_WRITE" }))).toBe(status.DATA_LOSS);
    expect(codeOf(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }))).toBe(status.RESOURCE_EXHAUSTED);
    expect(codeOf(Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY_SNAPSHOT" }))).toBe(status.UNAVAILABLE);
  });

  test("our own kinds win over a cause's code, keep their message, and a thing without a kind is UNKNOWN with context", () => {
    const cause = Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT" });
    const e = notFound('snapshot "k" does not exist', cause);
    expect(codeOf(e)).toBe(status.NOT_FOUND);
    expect(toServiceError(e, 'Stat key="k"').message).toBe('snapshot "k" does not exist');
    expect(codeOf(resourceExhausted("cap"))).toBe(status.RESOURCE_EXHAUSTED);
    expect(codeOf(dataLoss("digest mismatch"))).toBe(status.DATA_LOSS);
    // A wrapped raw error: the code is found down the cause chain.
    expect(codeOf(new Error("while placing", { cause: Object.assign(new Error("full"), { code: "ENOSPC" }) }))).toBe(status.RESOURCE_EXHAUSTED);
    const odd = toServiceError(new TypeError("x is undefined"), 'Commit key="c"');
    expect(odd.code).toBe(status.UNKNOWN);
    expect(odd.message).toBe('Commit key="c": x is undefined');
  });
});
