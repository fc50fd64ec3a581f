#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine, as root:
#   bash scripts/test.sh
# installs what it needs (Debian packages, npm install), checks generated code and types, builds
# dist/rafsnap, runs the unit/integration/e2e tests (bun test) against the compiled binary
# and containerd's own snapshotter conformance suite. Last line: "N passed, M failed".
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
shared="${RAFSNAP_SHARED:-$here/../shared}"
logs="$(mktemp -d /tmp/rafsnap-test.XXXXXX)"
passed=0
failed=0

step() { echo; echo "=== $*"; }
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; echo "$*" >>"$logs/failed.txt"; }

step "dependencies"
bash scripts/deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }
# `npm install` with the committed lock file, not `npm ci`: npm 11's ci rejects the lock
# because @bufbuild/buf lists platform packages the registry does not serve (darwin, win32,
# armv7), which the lock file therefore cannot hold; install still takes the locked versions.
npm install --no-audit --no-fund --loglevel=error || { echo "npm install failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$here/node_modules/.bin:$PATH"

step "generated code is current"
if bash scripts/gen-check.sh; then ok "gen-check"; else bad "gen-check"; fi

step "type check"
if tsc --noEmit -p tsconfig.json; then ok "typecheck"; else bad "typecheck"; fi

step "format and lint (biome.jsonc)"
if biome ci --colors=off .; then ok "biome"; else bad "biome: run node_modules/.bin/biome check --write . and fix what is left"; fi

step "build"
if bun run build; then ok "build"; else bad "build"; echo "$passed passed, $failed failed"; exit 1; fi

step "bun test (unit, integration, e2e)"
bun test --timeout 300000 src test 2>&1 | tee "$logs/bun-test.log"
bun_rc=${PIPESTATUS[0]}
bp=$(grep -Eo '^ *[0-9]+ pass' "$logs/bun-test.log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
bf=$(grep -Eo '^ *[0-9]+ fail' "$logs/bun-test.log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
passed=$((passed + bp)); failed=$((failed + bf))
if [ "$bun_rc" -ne 0 ] && [ "$bf" -eq 0 ]; then bad "bun test exited $bun_rc"; fi

step "containerd snapshotter conformance (../shared/conformance)"
if [ -f "$shared/conformance/run.sh" ]; then
  SNAPSHOTTER_CMD="$here/dist/rafsnap serve --root {root} --address {sock} --log-to-stdout --log-level debug" \
    bash "$shared/conformance/run.sh" 2>&1 | tee "$logs/conformance.log"
  line=$(tail -1 "$logs/conformance.log")
  cp_=$(echo "$line" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p')
  cf_=$(echo "$line" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p')
  if [ -n "$cp_" ]; then
    passed=$((passed + cp_)); failed=$((failed + cf_))
    [ "$cp_" -eq 20 ] || bad "conformance: $cp_ of 20 passed"
  else
    bad "conformance did not report a result"
  fi
else
  bad "conformance suite not found at $shared/conformance"
fi

# CI keeps only the tail of this output: name what failed (and the first failures' errors,
# which bun prints above each "(fail)" line) right above the total.
if [ "$failed" -ne 0 ]; then
  echo
  echo "=== what failed (the errors of the first two failing tests, then every name)"
  grep -n -E '^\(fail\)' "$logs/bun-test.log" | head -2 | cut -d: -f1 | while read -r n; do
    echo "--- lines $((n > 20 ? n - 20 : 1))-$n of the bun test log"
    sed -n "$((n > 20 ? n - 20 : 1)),${n}p" "$logs/bun-test.log"
  done
  [ -f "$logs/failed.txt" ] && sed 's/^/step: /' "$logs/failed.txt"
  grep -E '^\(fail\)' "$logs/bun-test.log" | sort -u | head -40
fi
rm -rf "$logs"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
