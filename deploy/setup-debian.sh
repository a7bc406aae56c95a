#!/usr/bin/env bash
# Installs the Debian packages frl needs, only those that are missing.
# Idempotent: a second run installs nothing. Needs root (or sudo) only when
# something is missing.
#
#   deploy/setup-debian.sh            build, test and demo dependencies
#   deploy/setup-debian.sh --anchors  also what the reference scripts need
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  libuv1-dev                 # event loop
  libprotobuf-c-dev protobuf-c-compiler   # wire messages
  libssl-dev openssl         # TLS 1.3 and the certificate script
  libsodium-dev              # ChaCha20 streams, BLAKE2b, constant-time compares
  libcmocka-dev              # unit tests
  zlib1g-dev                 # reading the .gz IDX files
  libopenblas-dev            # SGEMM for training (see README: why OpenBLAS)
  dataset-fashion-mnist      # the data set every demo and benchmark uses
)
if [[ "${1:-}" == "--anchors" ]]; then
  pkgs+=(python3-torch python3-numpy gnuplot-nox)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing missing Debian packages: ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
