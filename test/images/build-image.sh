#!/usr/bin/env bash
# build-image.sh: builds the end-to-end test images as byte-reproducible OCI image layouts and,
# optionally, pushes them to a registry. No Docker engine, no network: busybox-static, GNU tar,
# pigz/gzip, jq, skopeo (docs/design.md §5–6).
#
# Usage:
#   build-image.sh OUT_DIR [REGISTRY_HOST]
#     OUT_DIR        gets one OCI layout per image: OUT_DIR/busybox (tag "single") and
#                    OUT_DIR/multi (tag "v1"); OUT_DIR/digests.txt lists "NAME:TAG DIGEST".
#     REGISTRY_HOST  e.g. 127.0.0.1:5000; when given, both images are pushed over plain HTTP as
#                    REGISTRY_HOST/busybox:single and REGISTRY_HOST/multi:v1.
#
# Images
#   busybox:single  one layer:
#     /bin/busybox (the static binary) and applet symlinks /bin/{sh,cat,ls,stat,...} -> busybox,
#     /etc/passwd, /etc/group, empty /tmp /proc /sys /dev /root. The smallest runnable image.
#
#   multi:v1  three layers, chosen to exercise every tar feature a snapshotter must apply:
#     layer 1 (base)   the busybox tree above, plus
#                      /data/dir/a, /data/dir/b    regular files
#                      /data/old/file              removed by layer 2's opaque marker
#                      /data/gone                  removed by layer 2's whiteout
#                      /data/hl-src                target of layer 2's hard link
#     layer 2 (edits)  /data/.wh.gone              whiteout: /data/gone disappears
#                      /data/old/.wh..wh..opq      opaque dir: lower /data/old/* hidden ...
#                      /data/old/new               ... but this new file is visible
#                      /data/link -> dir/a         relative symlink
#                      /data/hl-src, /data/hl      hl-src re-added with new content, and hl a
#                                                  hard link of it. A tar hard link may only
#                                                  name an entry of the same archive, so this
#                                                  layer carries both. With --sort=name tar
#                                                  meets "hl" first: it stores data/hl as the
#                                                  regular file and data/hl-src as a link entry
#                                                  (typeflag '1') to data/hl; either way both
#                                                  names end up as one inode, nlink 2.
#                      /data/xattr                 xattr user.rafsnap=yes (PAX header
#                                                  SCHILY.xattr.user.rafsnap, tar --xattrs)
#                      /data/setuid                mode 4755 (setuid bit)
#     layer 3 (top)    /data/hello                 "hello from rafsnap multi layer 3": a third
#                                                  level so the snapshot chain has a grandparent,
#                                                  and a known line for the image's Cmd to print
#     Config Cmd = ["/bin/sh","-c","cat /data/hello"].
#
# Needs: bash, GNU tar, pigz (or gzip), jq, setfattr (package attr), skopeo (only to push), and
# a TMPDIR whose filesystem takes user.* xattrs (ext4, or tmpfs on Linux >= 6.6).
#
# Reproducibility: every tar is written with --sort=name --mtime=@0 --owner=0 --group=0
# --numeric-owner --format=posix (PAX headers without atime/ctime/pid-dependent names), all file
# times are forced to 0, and gzip runs with -n (no name/time in the header) and a fixed level.
# The config's "created" is fixed too, so building twice gives the same manifest digest.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

OUT=${1:?usage: build-image.sh OUT_DIR [REGISTRY_HOST]}
HOST=${2:-}
BUSYBOX=${BUSYBOX:-/bin/busybox}
APPLETS=(sh cat ls stat echo test "[" true false sleep mkdir rm cp mv ln readlink grep id env head wc find touch chmod uname hostname ps mount df)
HELLO_LINE="hello from rafsnap multi layer 3"

# -n: no file name or time in the gzip header. pigz and gzip each give reproducible bytes, but
# not the same bytes, so a digest is only stable for one compressor; pigz runs single-threaded.
if command -v pigz >/dev/null; then GZ=(pigz -n -9 -c -p 1); else GZ=(gzip -n -9 -c); fi

OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rafsnap-img.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Tar options shared by every layer. --format=posix + the pax option strip the atime/ctime and
# the default "PaxHeaders.PID" header names, which would otherwise differ between runs.
TAR_OPTS=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)

# layer SRC_DIR LAYOUT [extra tar flags]: tars SRC_DIR's content (paths relative, no "./"
# prefix), stores the gzip blob in LAYOUT, and prints "DIFF_ID DIGEST SIZE".
layer() {
  local src=$1 layout=$2; shift 2
  find "$src" -exec touch -h -d @0 {} +
  local tarf="$WORK/layer.tar"
  (cd "$src" && find . -mindepth 1 -printf '%P\n' | sort |
    tar "${TAR_OPTS[@]}" "$@" --no-recursion -cf "$tarf" -T -)
  local diff_id; diff_id=$(sha256sum "$tarf" | cut -d' ' -f1)
  "${GZ[@]}" "$tarf" >"$WORK/layer.tar.gz"
  local digest; digest=$(sha256sum "$WORK/layer.tar.gz" | cut -d' ' -f1)
  local size; size=$(stat -c %s "$WORK/layer.tar.gz")
  mv "$WORK/layer.tar.gz" "$layout/blobs/sha256/$digest"
  rm -f "$tarf"
  echo "$diff_id $digest $size"
}

# put_blob LAYOUT FILE: moves FILE into LAYOUT's blob store, prints "DIGEST SIZE".
put_blob() {
  local layout=$1 f=$2 d s
  d=$(sha256sum "$f" | cut -d' ' -f1); s=$(stat -c %s "$f")
  mv "$f" "$layout/blobs/sha256/$d"
  echo "$d $s"
}

# busybox_tree DIR: the base root filesystem.
busybox_tree() {
  local r=$1
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root"
  cp "$BUSYBOX" "$r/bin/busybox"
  chmod 0755 "$r/bin/busybox"
  for a in "${APPLETS[@]}"; do ln -s busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
}

# image NAME TAG CMD_JSON LAYER_DIR...: writes OUT/NAME as an OCI layout tagged TAG (one layer per
# LAYER_DIR, bottom first; a LAYER_DIR with a sibling "LAYER_DIR.xattrs" marker is tarred with
# --xattrs) and appends "NAME:TAG MANIFEST_DIGEST" to digests.txt.
image() {
  local name=$1 tag=$2 cmd=$3; shift 3
  local layout="$OUT/$name"
  rm -rf "$layout"
  mkdir -p "$layout/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  local diff_ids=() layers=() i=0
  for dir in "$@"; do
    i=$((i + 1))
    local flags=()
    [[ -e "$dir.xattrs" ]] && flags=(--xattrs --xattrs-include='user.*')
    local out; out=$(layer "$dir" "$layout" "${flags[@]}")
    read -r diff_id digest size <<<"$out"
    diff_ids+=("sha256:$diff_id")
    layers+=("$(jq -cn --arg d "sha256:$digest" --argjson s "$size" \
      '{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip",digest:$d,size:$s}')")
  done
  jq -cnS --argjson cmd "$cmd" --args '{
      created: "1970-01-01T00:00:00Z", architecture: "amd64", os: "linux",
      config: {Env: ["PATH=/bin"], Cmd: $cmd, WorkingDir: "/"},
      rootfs: {type: "layers", diff_ids: $ARGS.positional},
      history: [$ARGS.positional[] | {created: "1970-01-01T00:00:00Z", created_by: "build-image.sh"}]
    }' "${diff_ids[@]}" | tr -d '\n' >"$WORK/config.json"
  read -r cdigest csize <<<"$(put_blob "$layout" "$WORK/config.json")"
  printf '%s\n' "${layers[@]}" | jq -cS --slurp --arg cd "sha256:$cdigest" --argjson cs "$csize" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: .
    }' | tr -d '\n' >"$WORK/manifest.json"
  read -r mdigest msize <<<"$(put_blob "$layout" "$WORK/manifest.json")"
  jq -cnS --arg d "sha256:$mdigest" --argjson s "$msize" --arg tag "$tag" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
        annotations: {"org.opencontainers.image.ref.name": $tag},
        platform: {architecture: "amd64", os: "linux"}}]
    }' | tr -d '\n' >"$layout/index.json"
  echo "$name:$tag sha256:$mdigest" >>"$OUT/digests.txt"
}

: >"$OUT/digests.txt"

# busybox:single
busybox_tree "$WORK/single"
image busybox single '["/bin/sh"]' "$WORK/single"

# multi:v1, layer 1
L1="$WORK/multi-1"
busybox_tree "$L1"
mkdir -p "$L1/data/dir" "$L1/data/old"
echo "a from layer 1" >"$L1/data/dir/a"
echo "b from layer 1" >"$L1/data/dir/b"
echo "old file, hidden by the opaque dir in layer 2" >"$L1/data/old/file"
echo "gone, removed by a whiteout in layer 2" >"$L1/data/gone"
echo "hl-src from layer 1" >"$L1/data/hl-src"
# layer 2
L2="$WORK/multi-2"
mkdir -p "$L2/data/old"
: >"$L2/data/.wh.gone"
: >"$L2/data/old/.wh..wh..opq"
echo "new file in the opaque dir" >"$L2/data/old/new"
ln -s dir/a "$L2/data/link"
echo "hl-src from layer 2" >"$L2/data/hl-src"
ln "$L2/data/hl-src" "$L2/data/hl"
echo "file with an xattr" >"$L2/data/xattr"
setfattr -n user.rafsnap -v yes "$L2/data/xattr"
echo '#!/bin/sh' >"$L2/data/setuid"
chmod 4755 "$L2/data/setuid"
touch "$L2.xattrs" # marker: tar this layer with --xattrs
# layer 3
L3="$WORK/multi-3"
mkdir -p "$L3/data"
echo "$HELLO_LINE" >"$L3/data/hello"
image multi v1 '["/bin/sh","-c","cat /data/hello"]' "$L1" "$L2" "$L3"

if [[ -n "$HOST" ]]; then
  while read -r ref _; do
    name=${ref%%:*} tag=${ref#*:}
    skopeo copy --quiet --dest-tls-verify=false "oci:$OUT/$name:$tag" "docker://$HOST/$name:$tag" >&2
  done <"$OUT/digests.txt"
fi
cat "$OUT/digests.txt"
