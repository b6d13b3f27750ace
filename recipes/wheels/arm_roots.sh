#!/usr/bin/env bash
# Builds the emulated Arm Python environments the wheel smoke tests install into: Debian roots made
# from Debian packages only (no compiler in them), run under qemu-user through binfmt_misc.
#   bullseye-arm64  : glibc 2.31, Python 3.9  (the oldest glibc our manylinux_2_31 tag promises; JetPack 5's glibc)
#   bookworm-arm64  : glibc 2.36, Python 3.11 (Raspberry Pi OS bookworm 64-bit, the common Pi 4/5 setup)
#   bookworm-armhf  : glibc 2.36, Python 3.11 (Raspberry Pi OS bookworm 32-bit; numpy and PyYAML from apt as on a Pi,
#                     since PyPI has no armv7l wheels for them)
# plus wheelhouse-<root> for the arm64 roots: PyPI's aarch64 wheels of the dependencies, for an offline install.
# Usage: bash recipes/wheels/arm_roots.sh [ROOTS_DIR]   (default $EDGE_SPEECH_DATA/arm-roots, else data/arm-roots; 3-4 min per root, three roots)
# Needs root, the debootstrap and qemu-user-static packages, and network access to the Debian mirror and PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
roots_dir=${1:-${ES_ARM_ROOTS:-${EDGE_SPEECH_DATA:-data}/arm-roots}}
mkdir -p "$roots_dir" && roots_dir=$(cd "$roots_dir" && pwd)  # absolute: debootstrap and chroot run elsewhere
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
wheelhouse() {  # root name, Python version (3.X), glibc minor of the root
  # The aarch64 smoke tests install offline: the wheel's dependencies (pyproject.toml), ONNX Runtime included,
  # as PyPI's aarch64 wheels for that Python, under any manylinux tag the root's glibc accepts.
  local name=$1 version=$2 glibc_minor=$3 dir="$roots_dir/wheelhouse-$1"
  [ -e "$dir/.complete" ] && return
  # pip download evaluates markers for this machine: evaluate them for the target instead.
  .venv/bin/python - "$version" >"$roots_dir/requirements-$name.txt" <<'PY'
import sys
import tomllib

from packaging.requirements import Requirement

target = {"python_version": sys.argv[1], "python_full_version": sys.argv[1] + ".0", "platform_machine": "aarch64",
          "sys_platform": "linux"}
for line in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate(target):
        req.marker = None
        print(req)
PY
  local platforms=(--platform manylinux2014_aarch64) minor
  for minor in $(seq 17 "$glibc_minor"); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
  PIP_CONSTRAINT="" .venv/bin/pip download --quiet --only-binary=:all: "${platforms[@]}" --python-version "$version" \
    --implementation cp --abi "cp${version/./}" -d "$dir" -r "$roots_dir/requirements-$name.txt" 2>&1 | grep -v "^WARNING: Location" || true
  ls "$dir"/onnxruntime-*.whl >/dev/null  # the point of the aarch64 roots: the model runs there
  touch "$dir/.complete"
  echo "== wheelhouse-$name: $(ls "$dir" | wc -l) wheels ($(du -sh "$dir" | cut -f1))"
}

build_root bullseye-arm64 arm64 bullseye python3,python3-venv
wheelhouse bullseye-arm64 3.9 31
build_root bookworm-arm64 arm64 bookworm python3,python3-venv
wheelhouse bookworm-arm64 3.11 36
build_root bookworm-armhf armhf bookworm python3,python3-venv,python3-numpy,python3-yaml
