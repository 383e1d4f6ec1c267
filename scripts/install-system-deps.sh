#!/usr/bin/env bash
# The system (Debian) packages triage needs, installed only when missing: a no-op that takes
# milliseconds when everything is there. `install-system-deps.sh demo` (make demo, make serve):
# only what the demo runs. Without an argument (make install, so make test; .ci/run before
# `make test`): also what the tests and the container images use. Needs root or passwordless
# sudo only when something is missing; without either it names what is missing and fails.
set -euo pipefail

scope=${1:-all}
[[ $scope == demo || $scope == all ]] || { echo "usage: $0 [demo]" >&2; exit 2; }

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need make || missing+=(make)
need java || missing+=(openjdk-17-jre-headless)  # the local Kafka broker (triage kafka start)
need mvn || missing+=(maven)                      # fetches the broker's jars (local/kafka_pom.xml)
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)  # .venv/
if [[ $scope == all ]]; then
  need prometheus || missing+=(prometheus)        # tests/integration/test_observability.py
  need promtool || missing+=(prometheus)          # rule checks of deploy/alerts.yml
  need docker-compose || missing+=(docker-compose)  # tests/unit/test_deploy.py: `config` only
  need chromium || missing+=(chromium)            # browser test (headless)
  need chromedriver || missing+=(chromium-driver)
  # Containers (make images, tests/integration/test_compose.py): Debian's podman 4.3 as root,
  # the compose file run by Debian's docker-compose against podman's socket, the base image
  # made by debootstrap (no container registry is reachable here).
  need podman || missing+=(podman)
  need go || missing+=(golang-go)                 # builds helm (Makefile: .triage/bin/helm)
  [[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
fi

# Podman as root on these machines needs runc and cgroupfs (no systemd session); the broker and
# the JVM want more open files than the default. Written once, never over an operator's own.
containers_conf() {
  [[ $scope == demo || -e /etc/containers/containers.conf ]] || ((EUID != 0)) && return 0
  mkdir -p /etc/containers
  printf '%s\n' '[engine]' 'runtime = "runc"' 'cgroup_manager = "cgroupfs"' \
    '[containers]' 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' \
    >/etc/containers/containers.conf
}
trap containers_conf EXIT

((${#missing[@]})) || exit 0
# One name per package (prometheus covers two commands).
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if ((EUID == 0)); then
  sudo=()
elif need sudo && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "error: installing them needs root or passwordless sudo; run as root:" \
    "apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "== installing system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq "${missing[@]}" >/dev/null
