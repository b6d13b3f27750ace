#!/usr/bin/env bash
# Builds the emulated Arm Python environments the wheel smoke tests install into: Debian roots made
# from Debian packages only (no compiler in them), run under qemu-user through binfmt_misc.
#   bullseye-arm64  : glibc 2.31, Python 3.9  (the oldest glibc our manylinux_2_31 tag promises; JetPack 5's glibc)
#   bookworm-armhf  : glibc 2.36, Python 3.11 (Raspberry Pi OS bookworm 32-bit; numpy and PyYAML from apt as on a Pi,
#                     since PyPI has no armv7l wheels for them)
# plus wheelhouse-bullseye-arm64: PyPI's aarch64 wheels of the package's dependencies, for an offline install.
# Usage: bash recipes/wheels/arm_roots.sh [ROOTS_DIR]   (default /work/data/arm-roots; 3-4 min per root)
# Needs root, the debootstrap and qemu-user-static packages, and network access to the Debian mirror and PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
roots_dir=${1:-${ES_ARM_ROOTS:-/work/data/arm-roots}}
mirror=${ES_DEBIAN_MIRROR:-http://deb.debian.org/debian}
bash recipes/wheels/binfmt.sh

build_root() {  # name, debian arch, suite, packages
  local name=$1 arch=$2 suite=$3 packages=$4 root="$roots_dir/$1"
  if [ -e "$root/.complete" ]; then
    echo "== $name: already built ($root)"
    return
  fi
  echo "== $name: debootstrap $suite/$arch into $root"
  rm -rf "$root"
  mkdir -p "$roots_dir"
  local start=$SECONDS
  debootstrap --arch="$arch" --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$roots_dir/$name.log" 2>&1 ||
    { tail -20 "$roots_dir/$name.log"; exit 1; }
  # The smoke tests install wheels offline; a compiler in the root would hide a wheel that is not used.
  if compgen -G "$root/usr/bin/*gcc*" >/dev/null || [ -e "$root/usr/bin/cc" ]; then
    echo "error: $root has a C compiler; the smoke test must run without one" >&2
    exit 1
  fi
  echo "$suite $arch $packages" >"$root/.complete"
  echo "== $name: done in $((SECONDS - start)) s ($(du -sh "$root" | cut -f1))"
}
build_root bullseye-arm64 arm64 bullseye python3,python3-venv
build_root bookworm-armhf armhf bookworm python3,python3-venv,python3-numpy,python3-yaml

# The aarch64 smoke test installs offline: the wheel's dependencies (pyproject.toml), ONNX Runtime included, as
# PyPI's aarch64 wheels for Python 3.9, any manylinux tag that glibc 2.31 accepts.
wheelhouse="$roots_dir/wheelhouse-bullseye-arm64"
if [ ! -e "$wheelhouse/.complete" ]; then
  # pip download evaluates markers for this machine: evaluate them for the target instead.
  .venv/bin/python - >"$roots_dir/requirements-bullseye-arm64.txt" <<'PY'
import tomllib
from packaging.requirements import Requirement
target = {"python_version": "3.9", "python_full_version": "3.9.2", "platform_machine": "aarch64", "sys_platform": "linux"}
for line in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate(target):
        req.marker = None
        print(req)
PY
  platforms=(--platform manylinux2014_aarch64)
  for minor in 17 24 26 27 28 31; do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
  PIP_CONSTRAINT="" .venv/bin/pip download --quiet --only-binary=:all: "${platforms[@]}" --python-version 3.9 \
    --implementation cp --abi cp39 -d "$wheelhouse" -r "$roots_dir/requirements-bullseye-arm64.txt"
  touch "$wheelhouse/.complete"
  echo "== wheelhouse-bullseye-arm64: $(ls "$wheelhouse" | wc -l) wheels ($(du -sh "$wheelhouse" | cut -f1))"
fi
