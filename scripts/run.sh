#!/usr/bin/env bash
# Quick start: builds dist/rafsnap from this checkout (npm ci, bun build --compile) and runs
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
[ -x node_modules/.bin/bun ] || npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/bun run build
exec "$here/dist/rafsnap" serve --log-to-stdout "$@"
