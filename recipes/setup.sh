#!/usr/bin/env bash
# Sets up edge_speech on a Debian/Ubuntu machine: system packages, a virtual environment in
# .venv, and the package built from this checkout.
#   bash recipes/setup.sh          runtime + the tools the quickstart uses
#   bash recipes/setup.sh --test   also the test references, sanitizers and Arm cross tools
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

packages=(python3 python3-venv python3-dev build-essential espeak-ng sox)
if [ $with_tests = 1 ]; then
  packages+=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross qemu-user
             portaudio19-dev libasound2-dev asterisk-core-sounds-en asterisk-core-sounds-en-wav
             clang libclang-rt-dev  # libFuzzer (native/fuzz); the runtime package is only recommended
             iproute2)  # ip: loopback up in the Ray tests' network namespace (tests/run.sh)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ $with_tests = 1 ]; then
  # The converter tests need torch; this exact pin takes the CPU build (a looser one pulls CUDA).
  .venv/bin/python -m pip install -q torch==2.13.0
  # Editable: edits to edge_speech/ and converters/ take effect without reinstalling (C changes
  # need this line again). The build runs without isolation, so its tools come first.
  .venv/bin/python -m pip install -q "scikit-build-core>=0.10" "cmake>=3.18" "ninja>=1.10"
  .venv/bin/python -m pip install -q --no-build-isolation -e ".[test]"
  # Silero VAD's ONNX file for the --vad silero tests; the package's own code (and its torch
  # dependency) is never used, so it is installed without dependencies.
  .venv/bin/python -m pip install -q --no-deps silero-vad==6.2.3
else
  .venv/bin/python -m pip install -q .
fi
echo "setup: edge_speech $(.venv/bin/python -c 'from importlib.metadata import version; print(version("edge-speech"))') installed in .venv"
