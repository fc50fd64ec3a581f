#!/usr/bin/env bash
# gen-check: fail when the committed gen/ (buf / protoc-gen-es output) is not
# exactly what `buf generate` produces from proto/ right now.
#
# - Regenerates into a temporary directory (`buf generate -o TMP`), never
#   touching the working tree.
# - Compares directories with `diff -r`; does not look at git state, so it
#   works on a dirty tree, an unborn branch or an exported tarball.
# - Also checks the drizzle-kit half of `npm run gen`: generating migrations from
#   src/store/schema.ts into a copy of src/store/migrations must add nothing.
# - Needs nothing but the repo's own node_modules/.bin (buf, protoc-gen-es).
#
# Exit codes: 0 up to date, 1 stale gen/, 2 could not run the generator.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/node_modules/.bin:$PATH"

# The output directory(-ies) configured in buf.gen.yaml ("out: gen").
GEN_DIR="gen"

for tool in buf protoc-gen-es drizzle-kit; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "gen-check: '$tool' not found (run npm install first)" >&2
    exit 2
  fi
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/rafsnap-gen-check.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# -o prefixes every plugin `out:` of buf.gen.yaml with $TMP, so fresh output
# lands in $TMP/gen; `clean: true` then only cleans $TMP/gen.
if ! buf generate -o "$TMP" >"$TMP/buf.log" 2>&1; then
  echo "gen-check: buf generate failed:" >&2
  cat "$TMP/buf.log" >&2
  exit 2
fi

# drizzle-kit: a schema change without its migration is stale generated code too.
# drizzle-kit takes --out relative to the working directory (it prefixes "./"), so the copy
# lives in the repo's ignored .tmp/.
mkdir -p "$ROOT/.tmp"
MIG="$(mktemp -d "$ROOT/.tmp/gen-check.XXXXXX")"
trap 'rm -rf "$TMP" "$MIG"' EXIT
cp -r "$ROOT/src/store/migrations" "$MIG/migrations"
if ! drizzle-kit generate --dialect sqlite --schema ./src/store/schema.ts --out "${MIG#"$ROOT/"}/migrations" >"$TMP/drizzle.log" 2>&1 \
  || grep -q "Error" "$TMP/drizzle.log"; then
  echo "gen-check: drizzle-kit generate failed:" >&2
  cat "$TMP/drizzle.log" >&2
  exit 2
fi
if ! diff -rq "$ROOT/src/store/migrations" "$MIG/migrations" >"$TMP/migrations.diff" 2>&1; then
  echo "gen-check: src/store/schema.ts changed without a migration; run: bun run gen (then embed it in src/store/migrations.ts)" >&2
  cat "$TMP/migrations.diff" >&2
  exit 1
fi
echo "gen-check: src/store/migrations/ covers src/store/schema.ts"

fresh="$TMP/$GEN_DIR"
committed="$ROOT/$GEN_DIR"
mkdir -p "$fresh"

if [ ! -d "$committed" ]; then
  echo "gen-check: $GEN_DIR/ is missing; run: buf generate" >&2
  (cd "$fresh" && find . -type f | sed 's|^\./|  missing: '"$GEN_DIR"'/|' | sort) >&2
  exit 1
fi

if diff -r "$committed" "$fresh" >"$TMP/diff.txt" 2>&1; then
  echo "gen-check: $GEN_DIR/ is up to date"
  exit 0
fi

# Name every stale file, relative to the repo root.
{
  echo "gen-check: $GEN_DIR/ is stale; run: buf generate  (PATH=node_modules/.bin:\$PATH)"
  diff -rq "$committed" "$fresh" 2>&1 | while IFS= read -r line; do
    case "$line" in
      "Files $committed/"*" and $fresh/"*" differ")
        f="${line#"Files $committed/"}"
        f="${f%% and "$fresh/"*}"
        echo "  differs: $GEN_DIR/$f"
        ;;
      "Only in $committed"*)
        rest="${line#"Only in $committed"}"
        dir="${rest%%: *}"; name="${rest#*: }"
        dir="${dir#/}"
        echo "  not generated any more (delete): $GEN_DIR/${dir:+$dir/}$name"
        ;;
      "Only in $fresh"*)
        rest="${line#"Only in $fresh"}"
        dir="${rest%%: *}"; name="${rest#*: }"
        dir="${dir#/}"
        echo "  missing (not committed): $GEN_DIR/${dir:+$dir/}$name"
        ;;
      *)
        echo "  $line"
        ;;
    esac
  done
  echo "--- diff -r (committed vs fresh), first 200 lines:"
  head -n 200 "$TMP/diff.txt"
} >&2
exit 1
