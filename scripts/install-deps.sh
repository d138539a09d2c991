#!/usr/bin/env bash
# Installs the Debian 12 packages fusebox needs to build, test, demo and benchmark.
# Idempotent: when everything is present it prints nothing and exits 0.
#
#   scripts/install-deps.sh            build + test + demo dependencies
#   scripts/install-deps.sh --bench    also the benchmark contenders (nginx, haproxy, wrk, ...)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git ca-certificates curl procps
  libboost1.81-dev
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  python3-grpcio python3-protobuf python3-yaml
  nlohmann-json3-dev libspdlog-dev libfmt-dev prometheus-cpp-dev libyaml-cpp-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  prometheus nginx-light
)
bench_packages=(nginx-light haproxy wrk nghttp2-client gnuplot-nox)

for arg in "$@"; do
  case "$arg" in
    --bench) packages+=("${bench_packages[@]}") ;;
    *) echo "install-deps.sh: unknown option '$arg' (known: --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists when they are missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  "${sudo[@]}" apt-get update -qq
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's nginx/prometheus packages start services on install; fusebox's tests start their own.
for svc in nginx prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    "${sudo[@]}" systemctl stop "$svc" || true
  fi
done
