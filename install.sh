#!/usr/bin/env bash
# install.sh — installs rafsnap on a node from a release tarball, without network access.
#
# STUB: the distribution issue completes this script (systemd unit, default config,
# containerd wiring, --prefix/--no-systemd/--configure-containerd/--uninstall). Until then it
# only installs a built binary:
#   sudo ./install.sh [path/to/rafsnap]     # default: ./dist/rafsnap → /usr/local/bin/rafsnap
set -euo pipefail
src="${1:-$(dirname "$0")/dist/rafsnap}"
[ -x "$src" ] || { echo "install.sh: $src not found; build it with 'bun run build' first" >&2; exit 1; }
install -D -m 0755 "$src" /usr/local/bin/rafsnap
mkdir -p /usr/libexec/rafsnap
ln -sf /usr/local/bin/rafsnap /usr/libexec/rafsnap/containerd-nydus-grpc
echo "installed /usr/local/bin/rafsnap (and /usr/libexec/rafsnap/containerd-nydus-grpc)"
