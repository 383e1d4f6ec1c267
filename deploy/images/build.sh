#!/usr/bin/env bash
# Builds the compose stack's images with podman from sources reachable here, no container
# registry needed: a Debian bookworm base from `debootstrap --variant=minbase` (its tarball
# cached under .triage/images/, imported once), the triage image on it (Dockerfile, BASE build
# argument) and the Kafka image from the Maven jars `triage kafka start` uses. The machine's
# extra CA certificates go into both, so pip and apt inside the builds trust the same proxies
# the host does. `make images` runs it; tests/integration/test_compose.py too.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache="$root/.triage/images"
base=${TRIAGE_BASE_IMAGE:-localhost/triage-debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"

build_base() {
  podman image exists "$base" && return 0
  local tarball="$cache/bookworm-minbase.tar"
  if [[ ! -s $tarball ]]; then
    local dir="$cache/rootfs"
    rm -rf "$dir"
    echo "debootstrap bookworm (minbase) into $dir"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$dir"
  fi
  podman import --change 'CMD ["/bin/bash"]' "$tarball" "$base" >/dev/null
}

# The host's extra CAs (what update-ca-certificates installs) into both build contexts.
copy_cas() {
  local target=$1
  mkdir -p "$target"
  find "$target" -name '*.crt' -delete
  cp /usr/local/share/ca-certificates/*.crt "$target"/ 2>/dev/null || true
}

build_triage() {
  copy_cas "$root/deploy/images/ca-certificates"
  # No `encoder` extra: the demo models have no encoder heads, so the stack runs no encoder.
  podman build --build-arg "BASE=$base" --build-arg EXTRAS=serve -t triage:0.1.0 "$root"
}

# The jars resolved as `triage kafka start` resolves them (local/kafka_pom.xml, cached).
build_kafka() {
  local context
  context=$(fresh_context kafka)
  local libs
  libs=$("${TRIAGE_PYTHON:-$root/.venv/bin/python}" -c \
    "from triage.local import cluster as k; print(k.ensure_jars(k.default_libs_dir()))")
  cp -r "$libs" "$context/libs"
  cp "$root/local/kafka_log4j2.properties" "$context"/
  podman build --build-arg "BASE=$base" -t triage-kafka:4.3.1 "$context"
}

build_prometheus() {
  podman build --build-arg "BASE=$base" -t triage-prometheus:2.42 "$(fresh_context prometheus)"
}

# deploy/images/<name>/ and the host's CAs in a scratch context under .triage/images/.
fresh_context() {
  local context="$cache/$1-context"
  rm -rf "$context" && mkdir -p "$context"
  cp "$root/deploy/images/$1"/* "$context"/
  copy_cas "$context/ca-certificates"
  echo "$context"
}

case ${1:-all} in
  base) build_base ;;
  all) build_base && build_triage && build_kafka && build_prometheus ;;
  *) echo "usage: $0 [all|base]" >&2 && exit 2 ;;
esac
