#!/usr/bin/env bash
# Fetches what the wheel builds and their smoke tests need from Debian and PyPI, cached outside git (about
# 10 min the first time on 2 cores, a second once cached): the target CPython headers (python_headers.sh) and
# the emulated Arm roots with their wheelhouse (arm_roots.sh). Needs root, debootstrap and qemu-user-static.
#   bash recipes/wheels/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
for tool in debootstrap qemu-aarch64-static qemu-arm-static; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing debootstrap and qemu-user-static (missing: ${missing[*]})"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap qemu-user-static >/dev/null
fi
ES_HEADER_ARCHS="amd64 arm64 armhf" bash recipes/wheels/python_headers.sh "${ES_WHEEL_CACHE:-${EDGE_SPEECH_DATA:-data}/wheel-headers}"
bash recipes/wheels/arm_roots.sh
