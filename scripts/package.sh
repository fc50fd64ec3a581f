#!/usr/bin/env bash
# package.sh — builds the release packages of rafsnap from dist/ into dist/packages/:
#   rafsnap_<ver>_<arch>.deb, rafsnap-<ver>-1.<x86_64|aarch64>.rpm,
#   rafsnap-<ver>-linux-<arch>.tar.gz (install.sh + binary + unit + config + docs + SHA256SUMS)
# and dist/packages/SHA256SUMS over them.
#
# Usage: bash scripts/package.sh [--arch amd64|arm64|all] [--fast]
#   --arch   which architectures (default: the host's)
#   --fast   cheap compression (gzip -1) instead of the release's xz -6 (deb, rpm) and
#            gzip -9 (tarball); for tests. Each artifact is written in dist/packages/.work
#            and moved into place when complete.
# The version comes from package.json. dist/rafsnap (bun run build) is built if missing; a
# cross binary (dist/rafsnap-arm64 or -x64) is built with scripts/build.ts --target when
# missing or older than dist/rafsnap (the target's Bun runtime comes from npm once; Bun caches
# it in ~/.bun/install/cache, or $BUN_INSTALL_CACHE_DIR). Environment:
#   RAFSNAP_MAINTAINER   the Maintainer of the deb
#                        (default: rafsnap maintainers <rafsnap@users.noreply.github.com>)
#   SOURCE_DATE_EPOCH    timestamps of the packaged files (default: the last commit's time)
# Needs: dpkg-deb (dpkg), rpmbuild (rpm), tar, gzip, xz-utils, sha256sum (coreutils).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

die() { echo "package.sh: $*" >&2; exit 1; }

arch_opt=""
fast=0
while (($#)); do
  case "$1" in
    --arch) arch_opt="${2:-}"; shift 2 || die "--arch needs a value" ;;
    --arch=*) arch_opt="${1#--arch=}"; shift ;;
    --fast) fast=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$(uname -m)" in
  x86_64) host=amd64 ;;
  aarch64|arm64) host=arm64 ;;
  *) die "unsupported host architecture $(uname -m)" ;;
esac
case "${arch_opt:-$host}" in
  amd64|arm64) arches=("${arch_opt:-$host}") ;;
  all) arches=(amd64 arm64) ;;
  *) die "--arch must be amd64, arm64 or all, not '$arch_opt'" ;;
esac

need() { command -v "$1" >/dev/null || die "$1 not found: apt-get install $2"; }
need dpkg-deb dpkg
need rpmbuild rpm
need xz xz-utils
need gzip gzip
need sha256sum coreutils

version="$(sed -nE 's/^  "version": *"([^"]+)".*/\1/p' package.json | head -n1)"
[ -n "$version" ] || die "no version in package.json"
# 1.2.3-rc.1 sorts before 1.2.3 in dpkg and rpm only as 1.2.3~rc.1.
pkgversion="${version/-/\~}"
maintainer="${RAFSNAP_MAINTAINER:-rafsnap maintainers <rafsnap@users.noreply.github.com>}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

out="$here/dist/packages"
work="$out/.work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

bun_bin="$here/node_modules/.bin/bun"
[ -x "$bun_bin" ] || bun_bin="$(command -v bun || true)"

# binary_of ARCH: dist/rafsnap for the host, dist/rafsnap-<x64|arm64> for a cross target.
binary_of() {
  if [ "$1" = "$host" ]; then echo "$here/dist/rafsnap"
  elif [ "$1" = amd64 ]; then echo "$here/dist/rafsnap-x64"
  else echo "$here/dist/rafsnap-arm64"; fi
}

# ensure_binary ARCH: the host binary is `bun run build`'s product (what the tests ran): it is
# built only when missing, with a warning when older than the sources. A cross binary is
# (re)built when missing or older than the host binary, so both come from the same sources.
ensure_binary() {
  local bin target stale
  bin="$(binary_of "$1")"
  if [ "$1" = "$host" ]; then
    if [ -x "$bin" ]; then
      stale="$(find src gen package.json -newer "$bin" -print -quit 2>/dev/null || true)"
      [ -z "$stale" ] || echo "package.sh: warning: $bin is older than $stale (bun run build)" >&2
      return 0
    fi
    target=""
  else
    [ -x "$bin" ] && [ "$bin" -nt "$(binary_of "$host")" ] && return 0
    if [ "$1" = amd64 ]; then target="--target=bun-linux-x64"; else target="--target=bun-linux-arm64"; fi
  fi
  [ -n "$bun_bin" ] || die "$bin is missing and bun is not installed (npm install)"
  "$bun_bin" scripts/build.ts $target >&2
  [ -x "$bin" ] || die "build did not produce $bin"
}

# check_elf ARCH FILE: the ELF machine of FILE is ARCH (62 = x86-64, 183 = AArch64).
check_elf() {
  local want machine
  if [ "$1" = amd64 ]; then want=62; else want=183; fi
  machine="$(od -An -tu2 -j18 -N2 "$2" | tr -d ' ')"
  [ "$machine" = "$want" ] || die "$2 is not a linux-$1 executable (ELF machine $machine)"
}

ensure_binary "$host"
for a in "${arches[@]}"; do [ "$a" = "$host" ] || ensure_binary "$a"; check_elf "$a" "$(binary_of "$a")"; done

host_version="$("$here/dist/rafsnap" version | sed -n '1s/^rafsnap //p')"
[ "$host_version" = "$version" ] || die "dist/rafsnap is version '$host_version', package.json says $version"

# Shared inputs: the default config (the binary's own), the man page, the docs.
"$here/dist/rafsnap" config --default > "$work/config.toml"
grep -q '^nydusd_path = "/usr/libexec/rafsnap/nydusd"$' "$work/config.toml" \
  || die "the default config does not set nydusd_path = \"/usr/libexec/rafsnap/nydusd\""
date_str="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"
sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$date_str/g" packaging/rafsnap.8 > "$work/rafsnap.8"
docs=(README.md)
for f in docs/*.md; do docs+=("$f"); done

if ((fast)); then
  deb_z=(-Zgzip -z1); rpm_payload="w1.gzdio"; gz_level=-1
else
  deb_z=(-Zxz -z6); rpm_payload="w6T.xzdio"; gz_level=-9
fi

# stage_tree DIR ARCH UNITDIR: the installed file tree (as on the node) under DIR.
stage_tree() {
  local d="$1" unitdir="$3"
  install -D -m 0755 "$(binary_of "$2")" "$d/usr/bin/rafsnap"
  mkdir -p "$d/usr/libexec/rafsnap"
  ln -s ../../bin/rafsnap "$d/usr/libexec/rafsnap/containerd-nydus-grpc"
  ln -s ../../bin/rafsnap "$d/usr/libexec/rafsnap/nydusd"
  install -D -m 0644 "$work/config.toml" "$d/etc/containerd-nydus/config.toml"
  install -D -m 0644 packaging/rafsnap.service "$d$unitdir/rafsnap.service"
  install -d -m 0755 "$d/usr/share/man/man8" "$d/usr/share/doc/rafsnap"
  gzip -9n < "$work/rafsnap.8" > "$d/usr/share/man/man8/rafsnap.8.gz"
  chmod 0644 "$d/usr/share/man/man8/rafsnap.8.gz"
  for f in "${docs[@]}"; do install -m 0644 "$f" "$d/usr/share/doc/rafsnap/$(basename "$f")"; done
}

build_deb() {
  local a="$1" d="$work/deb-$1" size
  stage_tree "$d" "$a" /lib/systemd/system
  install -m 0644 packaging/deb/copyright "$d/usr/share/doc/rafsnap/copyright"
  { printf 'rafsnap (%s) unstable; urgency=medium\n\n' "$pkgversion"
    printf '  * Release %s. See /usr/share/doc/rafsnap/README.md.\n\n' "$version"
    printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n > "$d/usr/share/doc/rafsnap/changelog.gz"
  chmod 0644 "$d/usr/share/doc/rafsnap/changelog.gz"
  install -D -m 0644 packaging/deb/lintian-overrides "$d/usr/share/lintian/overrides/rafsnap"
  mkdir -p "$d/DEBIAN"
  size="$(du -sk --apparent-size --exclude=DEBIAN "$d" | cut -f1)"
  sed -e "s|@DEBVERSION@|$pkgversion|" -e "s|@ARCH@|$a|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s/@INSTALLED_SIZE@/$size/" packaging/deb/control.in > "$d/DEBIAN/control"
  install -m 0644 packaging/deb/conffiles "$d/DEBIAN/conffiles"
  for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$d/DEBIAN/$s"; done
  (cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum > DEBIAN/md5sums)
  chmod 0644 "$d/DEBIAN/md5sums"
  dpkg-deb --root-owner-group "${deb_z[@]}" --build "$d" "$work/rafsnap_${pkgversion}_$a.deb" >/dev/null
  mv -f "$work/rafsnap_${pkgversion}_$a.deb" "$out/"
  built+=("$out/rafsnap_${pkgversion}_$a.deb")
}

build_rpm() {
  local a="$1" d="$work/rpm-$1" rpmarch top
  if [ "$a" = amd64 ]; then rpmarch=x86_64; else rpmarch=aarch64; fi
  stage_tree "$d" "$a" /usr/lib/systemd/system
  top="$work/rpmbuild-$a"
  mkdir -p "$top/SPECS"
  sed -e "s/@RPMVERSION@/$pkgversion/" -e "s/@RPMARCH@/$rpmarch/" -e "s/@RPMPAYLOAD@/$rpm_payload/" \
    packaging/rpm/rafsnap.spec.in > "$top/SPECS/rafsnap.spec"
  rpmbuild -bb --quiet --target "$rpmarch" --nodeps \
    --define "_topdir $top" --define "payload $d" --define "_rpmdir $work" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "_dbpath $top/rpmdb" \
    "$top/SPECS/rafsnap.spec" >/dev/null
  [ -f "$work/rafsnap-$pkgversion-1.$rpmarch.rpm" ] || die "rpmbuild did not produce rafsnap-$pkgversion-1.$rpmarch.rpm"
  mv -f "$work/rafsnap-$pkgversion-1.$rpmarch.rpm" "$out/"
  built+=("$out/rafsnap-$pkgversion-1.$rpmarch.rpm")
}

build_tarball() {
  local a="$1" name="rafsnap-$version-linux-$1" d
  d="$work/tar-$a/$name"
  mkdir -p "$d/docs"
  install -m 0755 "$(binary_of "$a")" "$d/rafsnap"
  install -m 0755 install.sh "$d/install.sh"
  install -m 0644 packaging/rafsnap.service "$d/rafsnap.service"
  install -m 0644 "$work/config.toml" "$d/config.toml"
  install -m 0644 "$work/rafsnap.8" "$d/rafsnap.8"
  for f in "${docs[@]}"; do install -m 0644 "$f" "$d/docs/$(basename "$f")"; done
  (cd "$d" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum > "$work/SHA256SUMS-$a")
  install -m 0644 "$work/SHA256SUMS-$a" "$d/SHA256SUMS"
  tar -C "$work/tar-$a" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -n "$gz_level" > "$work/$name.tar.gz"
  mv -f "$work/$name.tar.gz" "$out/"
  built+=("$out/$name.tar.gz")
}

mkdir -p "$out"
built=()
for a in "${arches[@]}"; do
  build_deb "$a"
  build_rpm "$a"
  build_tarball "$a"
  rm -rf "$work/deb-$a" "$work/rpm-$a" "$work/tar-$a" "$work/rpmbuild-$a"
done
(cd "$out" && sha256sum -- *.deb *.rpm *.tar.gz > SHA256SUMS)
printf '%s\n' "${built[@]}"
