#!/usr/bin/env bash
# install.sh — installs rafsnap from an extracted release tarball, with no network access:
#   tar xzf rafsnap-<ver>-linux-<arch>.tar.gz && cd rafsnap-<ver>-linux-<arch>
#   sudo ./install.sh [--prefix DIR] [--no-systemd] [--configure-containerd [--containerd-config FILE]]
#   sudo ./install.sh --uninstall [--prefix DIR]
#
# Installs the same files as the deb and rpm packages:
#   /usr/bin/rafsnap
#   /usr/libexec/rafsnap/containerd-nydus-grpc, /usr/libexec/rafsnap/nydusd  (links to rafsnap)
#   /etc/containerd-nydus/config.toml        (the default configuration; a changed one is kept)
#   /usr/lib/systemd/system/rafsnap.service  (/lib/systemd/system where /usr/lib has none)
#   /usr/share/man/man8/rafsnap.8.gz, /usr/share/doc/rafsnap/
# and records them in /var/lib/rafsnap/install-manifest.
#
# Options:
#   --prefix DIR             install under DIR (DIR/usr/bin/rafsnap, DIR/etc/..., ...); systemctl
#                            is never run with a prefix other than /
#   --no-systemd             no unit file, no systemctl
#   --configure-containerd   afterwards run `rafsnap setup containerd --cri` (containerd's
#                            config: --containerd-config FILE, default /etc/containerd/config.toml,
#                            or DIR/etc/containerd/config.toml with --prefix)
#   --uninstall              remove what install.sh installed (from the manifest); the
#                            configuration and the state directory are kept and printed
#   -h, --help               this text
#
# The files are checked against SHA256SUMS first; any mismatch refuses the installation.
# Running it again changes nothing (and says so). A configuration file changed by the user is
# never overwritten: the new default goes next to it as config.toml.rafsnap-new. Exit codes:
# 0 done, 1 failure, 2 usage error.
set -euo pipefail
# Arrays that may be empty are expanded as ${a[@]+"${a[@]}"}: bash < 4.4 (RHEL 7) treats
# "${a[@]}" of an empty array as unset under set -u.

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

prefix="/"
systemd=1
configure_containerd=0
containerd_config=""
uninstall=0
while (($#)); do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --no-systemd) systemd=0; shift ;;
    --configure-containerd) configure_containerd=1; shift ;;
    --containerd-config) [ $# -ge 2 ] || { echo "install.sh: --containerd-config needs a file" >&2; exit 2; }
      containerd_config="$2"; shift 2 ;;
    --containerd-config=*) containerd_config="${1#--containerd-config=}"; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[ -n "$prefix" ] || { echo "install.sh: --prefix must not be empty" >&2; exit 2; }
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
prefix="${prefix%/}"          # "" is the real root; paths are "$prefix/usr/bin/..."
on_root=0; [ -z "$prefix" ] && on_root=1
shown_prefix="${prefix:-/}"

if ((on_root)) && [ "$(id -u)" -ne 0 ]; then
  die "installing into / needs root (sudo ./install.sh), or use --prefix DIR"
fi

manifest_rel=/var/lib/rafsnap/install-manifest
manifest="$prefix$manifest_rel"
config_rel=/etc/containerd-nydus/config.toml
default_root=/var/lib/containerd/io.containerd.snapshotter.v1.nydus

# systemctl only for the real root, with systemd as the running init.
use_systemctl=0
if ((on_root)) && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then use_systemctl=1; fi

# ---------------------------------------------------------------- uninstall
if ((uninstall)); then
  if [ ! -f "$manifest" ]; then
    say "nothing to uninstall: no $manifest (rafsnap was not installed by install.sh under $shown_prefix)"
    exit 0
  fi
  mapfile -t entries < <(grep -v '^#' "$manifest" | grep -v '^$' || true)
  for rel in ${entries[@]+"${entries[@]}"}; do
    if [[ "$rel" == */rafsnap.service ]] && ((use_systemctl)); then
      systemctl disable --now rafsnap.service >/dev/null 2>&1 || true
    fi
  done
  removed=0
  for rel in ${entries[@]+"${entries[@]}"}; do
    case "$rel" in */) continue ;; esac
    if [ -e "$prefix$rel" ] || [ -L "$prefix$rel" ]; then rm -f "$prefix$rel"; say "removed $prefix$rel"; removed=$((removed + 1)); fi
  done
  rm -f "$manifest"
  # Directories install.sh created, deepest first, if nothing else is in them.
  while IFS= read -r rel; do
    rmdir "$prefix$rel" 2>/dev/null || true
  done < <(printf '%s\n' ${entries[@]+"${entries[@]}"} | grep '/$' | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
  rmdir "$prefix/var/lib/rafsnap" 2>/dev/null || true
  if ((use_systemctl)); then systemctl daemon-reload >/dev/null 2>&1 || true; fi
  root="$default_root"
  if [ -f "$prefix$config_rel" ]; then
    r="$(sed -nE 's/^root *= *"([^"]+)".*/\1/p' "$prefix$config_rel" | head -n1)"
    [ -n "$r" ] && root="$r"
  fi
  say "uninstalled rafsnap from $shown_prefix ($removed files removed)"
  kept=()
  if [ -d "$prefix/etc/containerd-nydus" ]; then
    say "kept the configuration: $prefix/etc/containerd-nydus/ ($(find "$prefix/etc/containerd-nydus" -mindepth 1 -maxdepth 1 -printf '%P ' | sed 's/ $//'))"
    kept+=("$prefix/etc/containerd-nydus")
  fi
  if [ -d "$prefix$root" ]; then
    say "kept the state directory: $prefix$root"
    kept+=("$prefix$root")
  else
    say "no state directory at $prefix$root"
  fi
  if ((${#kept[@]})); then say "to remove them too: rm -rf ${kept[*]}"; fi
  say "if containerd was wired to rafsnap, remove [proxy_plugins.nydus] (and snapshotter = \"nydus\") from its config.toml"
  exit 0
fi

# ---------------------------------------------------------------- install
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for f in rafsnap config.toml rafsnap.service rafsnap.8 SHA256SUMS; do
  [ -f "$src/$f" ] || die "$src/$f is missing: run install.sh from an extracted release tarball (bash scripts/package.sh builds one)"
done
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
mapfile -t docs < <(cd "$src" && find docs -maxdepth 1 -type f -name '*.md' 2>/dev/null | LC_ALL=C sort)
# Every file installed must be listed in SHA256SUMS, and every listed file must match.
for f in rafsnap config.toml rafsnap.service rafsnap.8 install.sh ${docs[@]+"${docs[@]}"}; do
  awk -v f="$f" '{ n = $2; sub(/^\*/, "", n) } n == f { found = 1 } END { exit !found }' "$src/SHA256SUMS" \
    || die "$f is not listed in $src/SHA256SUMS; refusing to install"
done
if ! (cd "$src" && sha256sum --check --strict --quiet SHA256SUMS) >&2; then
  die "checksum verification failed ($src/SHA256SUMS); refusing to install a modified or incomplete release"
fi

version_line="$("$src/rafsnap" version 2>/dev/null | head -n1)" \
  || die "$src/rafsnap does not run on this machine ($(uname -m)): is this the tarball for the right architecture?"
version="${version_line#rafsnap }"

if ((on_root)); then
  for probe in "dpkg-query -S /usr/bin/rafsnap" "rpm -qf /usr/bin/rafsnap"; do
    if command -v "${probe%% *}" >/dev/null 2>&1 && $probe >/dev/null 2>&1; then
      die "/usr/bin/rafsnap belongs to an installed package ($probe); upgrade that package instead"
    fi
  done
fi

changes=0
note() { say "$*"; changes=$((changes + 1)); }

# Old manifest: its directories are still "ours"; its files that are no longer installed go.
old_entries=()
old_default_sum=""
if [ -f "$manifest" ]; then
  mapfile -t old_entries < <(grep -v '^#' "$manifest" | grep -v '^$' || true)
  old_default_sum="$(sed -n 's/^# default-config-sha256 //p' "$manifest" | head -n1)"
fi
entries=()
dirs=()

# ensure_dir REL: creates $prefix/REL (and parents); the ones created are recorded.
ensure_dir() {
  local rel="$1" missing=() p
  p="$rel"
  while [ -n "$p" ] && [ "$p" != / ] && [ ! -d "$prefix$p" ]; do missing+=("$p"); p="$(dirname "$p")"; done
  if ((${#missing[@]})); then mkdir -p "$prefix$rel"; fi
  for p in ${missing[@]+"${missing[@]}"}; do dirs+=("$p/"); done
}

# put_file SRC REL MODE: installs SRC as $prefix/REL if its content or mode differs.
put_file() {
  local srcf="$1" rel="$2" mode="$3" dest="$prefix$2"
  ensure_dir "$(dirname "$rel")"
  entries+=("$rel")
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$srcf" "$dest"; then
    if [ "$(stat -c %a "$dest")" != "${mode#0}" ]; then chmod "$mode" "$dest"; note "fixed the mode of $dest"; fi
    return 0
  fi
  local existed=0
  [ -e "$dest" ] && existed=1
  install -m "$mode" "$srcf" "$dest.rafsnap-tmp"
  mv -f "$dest.rafsnap-tmp" "$dest"
  if ((existed)); then note "updated $dest"; else note "installed $dest"; fi
}

# put_link TARGET REL: $prefix/REL is a symlink to TARGET.
put_link() {
  local target="$1" rel="$2" dest="$prefix$2"
  ensure_dir "$(dirname "$rel")"
  entries+=("$rel")
  if [ -L "$dest" ] && [ "$(readlink "$dest")" = "$target" ]; then return 0; fi
  [ -d "$dest" ] && [ ! -L "$dest" ] && die "$dest is a directory"
  ln -sfn "$target" "$dest"
  note "linked $dest -> $target"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

binary_changed_before=$changes
put_file "$src/rafsnap" /usr/bin/rafsnap 0755
binary_changed=$((changes - binary_changed_before))
put_link ../../bin/rafsnap /usr/libexec/rafsnap/containerd-nydus-grpc
put_link ../../bin/rafsnap /usr/libexec/rafsnap/nydusd
gzip -9n < "$src/rafsnap.8" > "$tmp/rafsnap.8.gz"
put_file "$tmp/rafsnap.8.gz" /usr/share/man/man8/rafsnap.8.gz 0644
for f in ${docs[@]+"${docs[@]}"}; do put_file "$src/$f" "/usr/share/doc/rafsnap/$(basename "$f")" 0644; done

unit_changed=0
if ((systemd)); then
  unitdir=/usr/lib/systemd/system
  if [ ! -d "$prefix/usr/lib/systemd/system" ] && [ -d "$prefix/lib/systemd/system" ] && [ ! -L "$prefix/lib" ]; then
    unitdir=/lib/systemd/system
  fi
  before=$changes
  put_file "$src/rafsnap.service" "$unitdir/rafsnap.service" 0644
  unit_changed=$((changes - before))
fi

# The configuration, like a dpkg conffile: installed when absent, replaced only when it is
# still the default an earlier install.sh put there, otherwise left alone with the new
# default next to it.
new_sum="$(sha256sum < "$src/config.toml" | cut -d' ' -f1)"
cfg="$prefix$config_rel"
ensure_dir "$(dirname "$config_rel")"
if [ ! -e "$cfg" ]; then
  install -m 0644 "$src/config.toml" "$cfg"
  note "installed $cfg"
else
  cur_sum="$(sha256sum < "$cfg" | cut -d' ' -f1)"
  if [ "$cur_sum" = "$new_sum" ]; then
    if [ -f "$cfg.rafsnap-new" ] && cmp -s "$src/config.toml" "$cfg.rafsnap-new"; then
      rm -f "$cfg.rafsnap-new"; note "removed $cfg.rafsnap-new (the configuration is the default)"
    fi
  elif [ -n "$old_default_sum" ] && [ "$cur_sum" = "$old_default_sum" ]; then
    install -m 0644 "$src/config.toml" "$cfg.rafsnap-tmp"
    mv -f "$cfg.rafsnap-tmp" "$cfg"
    note "updated $cfg (it was the previous default)"
  elif ! { [ -f "$cfg.rafsnap-new" ] && cmp -s "$src/config.toml" "$cfg.rafsnap-new"; }; then
    install -m 0644 "$src/config.toml" "$cfg.rafsnap-new"
    note "kept your changed $cfg; the new default is $cfg.rafsnap-new"
  fi
fi

# Files of an earlier install that this one no longer has (e.g. the unit after --no-systemd).
for rel in ${old_entries[@]+"${old_entries[@]}"}; do
  case "$rel" in */) dirs+=("$rel"); continue ;; esac
  keep=0
  for e in ${entries[@]+"${entries[@]}"}; do [ "$e" = "$rel" ] && { keep=1; break; }; done
  if ((!keep)) && { [ -e "$prefix$rel" ] || [ -L "$prefix$rel" ]; }; then
    if [[ "$rel" == */rafsnap.service ]] && ((use_systemctl)); then
      systemctl disable --now rafsnap.service >/dev/null 2>&1 || true
      unit_changed=1
    fi
    rm -f "$prefix$rel"; note "removed $prefix$rel (no longer installed)"
  fi
done

ensure_dir /var/lib/rafsnap
{
  echo "# rafsnap install.sh manifest: what --uninstall removes (directories end with /)."
  echo "# version $version"
  echo "# default-config-sha256 $new_sum"
  printf '%s\n' ${entries[@]+"${entries[@]}"}
  if ((${#dirs[@]})); then printf '%s\n' "${dirs[@]}" | LC_ALL=C sort -u; fi
} > "$tmp/manifest"
if ! cmp -s "$tmp/manifest" "$manifest"; then
  install -m 0644 "$tmp/manifest" "$manifest"
  ((changes)) || note "updated $manifest"
fi

if ((use_systemctl && systemd)); then
  if ((unit_changed)); then systemctl daemon-reload; fi
  if ((binary_changed || unit_changed)) && systemctl is-active --quiet rafsnap.service; then
    systemctl restart rafsnap.service
    note "restarted rafsnap.service"
  fi
fi

if ((changes)); then
  plural="s"; [ "$changes" -eq 1 ] && plural=""
  say "rafsnap $version installed in $shown_prefix ($changes change$plural; manifest $manifest)"
else
  say "rafsnap $version is already installed in $shown_prefix; nothing changed"
fi

if ((configure_containerd)); then
  args=(setup containerd --cri)
  if [ -n "$containerd_config" ]; then args+=(--config "$containerd_config")
  elif ((!on_root)); then args+=(--config "$prefix/etc/containerd/config.toml"); fi
  ((on_root)) || args+=(--rafsnap-config "$cfg")
  say "running: $prefix/usr/bin/rafsnap ${args[*]}"
  set +e
  "$prefix/usr/bin/rafsnap" "${args[@]}" 2> "$tmp/setup.err"
  rc=$?
  set -e
  cat "$tmp/setup.err" >&2
  if [ "$rc" -ne 0 ]; then
    if grep -q 'Unknown command' "$tmp/setup.err"; then
      die "--configure-containerd: rafsnap $version has no 'setup containerd' command; wire containerd by hand (docs/install.md)"
    fi
    die "--configure-containerd: 'rafsnap ${args[*]}' failed (exit $rc)"
  fi
fi

if ((on_root && systemd)); then
  if ((use_systemctl)) && systemctl is-enabled --quiet rafsnap.service 2>/dev/null; then :; else
    ((configure_containerd)) || say "next: rafsnap setup containerd --cri   (wires containerd to rafsnap)"
    say "next: systemctl enable --now rafsnap && systemctl restart containerd"
  fi
fi
