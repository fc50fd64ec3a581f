// The kind and message a promise fails with, for tests that assert on failures.
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
