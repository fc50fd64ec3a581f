#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, if missing (idempotent).
# Real components only: containerd + runc, docker-registry, FUSE/EROFS tools, busybox for
# test images, mmdebstrap for the real Debian test images (test/harness/debian-images.ts),
# skopeo/jq/pigz to build and push them, Go + containerd sources for the
# conformance suite (../shared/conformance/run.sh installs those two itself as well), and for
# the packages (scripts/package.sh, test/packaging): rpm (rpmbuild), lintian, xz-utils,
# systemd + man-db (systemd-analyze verify), qemu-user-static + libc6-arm64-cross (the arm64
# binary under qemu-aarch64-static, no binfmt needed); prometheus for promtool and a real
# Prometheus server scraping /v1/metrics (test/e2e/metrics.test.ts).
set -euo pipefail
PKGS=(containerd runc docker-registry busybox-static skopeo jq pigz fuse3 erofs-utils attr lz4 mmdebstrap
      golang-go golang-github-containerd-containerd-dev git ca-certificates util-linux e2fsprogs
      rpm lintian xz-utils systemd man-db qemu-user-static libc6-arm64-cross prometheus)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's containerd package may start a system containerd; tests run their own and never
# touch it. Node + npm come with the machine (see README).
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
