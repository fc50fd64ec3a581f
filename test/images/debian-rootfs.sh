#!/usr/bin/env bash
# debian-rootfs.sh: builds one Debian root filesystem tree with mmdebstrap, for the test images of
# test/harness/debian-images.ts (which caches the trees and makes the layers). Root only.
#
# Usage:
#   SOURCE_DATE_EPOCH=N debian-rootfs.sh OUT_DIR SUITE VARIANT [PACKAGE...]
#     OUT_DIR   must not exist yet; gets the tree
#     SUITE     e.g. bookworm
#     VARIANT   mmdebstrap variant, e.g. minbase
#     PACKAGE   installed on top of the variant (--include)
#
# Apt sources are the machine's own (/etc/apt/sources.list and the .list/.sources files of
# /etc/apt/sources.list.d), so the mirror is whatever this machine uses; without any,
# mmdebstrap's default (deb.debian.org) applies. SOURCE_DATE_EPOCH makes mmdebstrap and dpkg
# reproducible where they can be, and every mtime newer than it is clamped to it afterwards, so
# two builds of the same package set differ only where the packages' scripts write
# non-reproducible content. All output goes to stderr.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022
exec 1>&2

OUT=${1:?usage: SOURCE_DATE_EPOCH=N debian-rootfs.sh OUT_DIR SUITE VARIANT [PACKAGE...]}
SUITE=${2:?suite missing}
VARIANT=${3:?variant missing}
shift 3
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
export SOURCE_DATE_EPOCH

if [ "$(id -u)" != 0 ]; then echo "debian-rootfs.sh: needs root (mmdebstrap --mode=root)"; exit 1; fi
command -v mmdebstrap >/dev/null || { echo "debian-rootfs.sh: mmdebstrap is missing (apt-get install mmdebstrap)"; exit 1; }
if [ -e "$OUT" ]; then echo "debian-rootfs.sh: $OUT already exists"; exit 1; fi

SOURCES=()
if [ -s /etc/apt/sources.list ] && grep -q '^[[:space:]]*deb' /etc/apt/sources.list; then SOURCES+=(/etc/apt/sources.list); fi
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -s "$f" ] && SOURCES+=("$f")
done

INCLUDE=()
if [ $# -gt 0 ]; then INCLUDE=("--include=$(IFS=,; echo "$*")"); fi

echo "debian-rootfs.sh: mmdebstrap --variant=$VARIANT --mode=root ${INCLUDE[*]} $SUITE $OUT (sources: ${SOURCES[*]:-mmdebstrap default})"
mmdebstrap --variant="$VARIANT" --mode=root --format=directory "${INCLUDE[@]}" "$SUITE" "$OUT" "${SOURCES[@]}"

# Clamp mtimes (symlinks themselves, never their targets; -c: never create or open a file).
find "$OUT" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -c -h -d "@$SOURCE_DATE_EPOCH"
echo "debian-rootfs.sh: $OUT done ($(find "$OUT" | wc -l) paths, $(du -sh "$OUT" | cut -f1))"
