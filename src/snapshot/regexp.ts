/**
 * Go (RE2) regular expressions for `~=` filters, through re2js — a port of RE2 to JavaScript:
 * linear-time matching whatever the pattern (no backtracking), the same matches as Go's
 * `regexp.MatchString`, and the same invalid-pattern errors as Go's `regexp.Compile`. Syntax
 * that Go versions disagree on (`(?<name>…)`, accepted from Go 1.22) follows the newer Go.
 */
import { RE2JS } from "re2js";

/** A compiled pattern: `test(s)` is Go's `MatchString` (a match anywhere in `s`). */
export interface GoRegexp {
  test(s: string): boolean;
}

/**
 * Compiles `pattern` with RE2 semantics. Throws Error whose message is Go's reason without
 * its `error parsing regexp: ` prefix (`missing closing ): \`(\``, `invalid repeat count:
 * \`{1001}\``, …) when Go would refuse the pattern. Callers wrap it in their own error kind.
 */
export function compileGoRegexp(pattern: string): GoRegexp {
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (e) {
    const why = String((e as Error).message).replace(/^error parsing regexp: /, "");
    // Go names the offending text after every reason, empty for a trailing backslash.
    throw new Error(why === "trailing backslash at end of expression" ? `${why}: \`\`` : why);
  }
  return { test: (s) => re.matcher(s).find() };
}
