// The kind and message a promise fails with, for tests that assert on failures.
import { type Code, ConnectError } from "@connectrpc/connect";
import { kindOf } from "../../src/errdefs/index.ts";

/** Awaits `p` and returns its error's kind and message; throws when it does not fail. */
export async function failure(p: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { kind: kindOf(e), message: String((e as Error).message) };
  }
  throw new Error("expected a failure");
}

/** The gRPC code and message a call ends with (undefined code: it succeeded). */
export async function codeOf(p: Promise<unknown>): Promise<{ code: Code | undefined; message: string }> {
  try {
    await p;
    return { code: undefined, message: "" };
  } catch (e) {
    return { code: e instanceof ConnectError ? e.code : undefined, message: String(e) };
  }
}

/** What `fn` throws; throws itself when `fn` returns. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}
