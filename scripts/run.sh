#!/usr/bin/env bash
# Quick start: builds dist/rafsnap from this checkout (npm install, bun build --compile) and runs
# the snapshotter in the foreground on its embedded defaults:
#   root    /var/lib/containerd/io.containerd.snapshotter.v1.nydus
#   socket  /run/containerd-nydus/containerd-nydus-grpc.sock
# Extra arguments go to `rafsnap serve` (e.g. --config /etc/containerd-nydus/config.toml).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# `npm install` with the committed lock file, not `npm ci`: npm 11's ci rejects the lock
# because @bufbuild/buf lists platform packages the registry does not serve (darwin, win32,
# armv7), which the lock file therefore cannot hold; install still takes the locked versions.
[ -x node_modules/.bin/bun ] || npm install --no-audit --no-fund --loglevel=error
node_modules/.bin/bun run build
exec "$here/dist/rafsnap" serve --log-to-stdout "$@"
