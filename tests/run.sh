#!/usr/bin/env bash
# The whole test suite: lint and type checks, the C unit tests (native, under AddressSanitizer +
# UBSan, and cross-compiled for aarch64 and armv7 under qemu), a bounded libFuzzer run over the C
# parsers and decoders, then the Python tests (tests/test_fuzz_parsers.py is the Python fuzz budget),
# the Ray ones in a network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash recipes/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"  # cmake and ninja from the test extra

echo "== Lint, format and types"
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy

native_tests() {  # name, extra cmake arguments...
  local name=$1
  shift
  echo "== C tests: $name"
  cmake -S . -B "build/tests-$name" -G Ninja -DES_BUILD_TESTS=ON "$@" >/dev/null
  cmake --build "build/tests-$name" >/dev/null
  (cd "build/tests-$name" && ctest --output-on-failure)
}
native_tests host
native_tests sanitize -DES_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
native_tests aarch64 -DCMAKE_TOOLCHAIN_FILE=targets/toolchains/aarch64-linux-gnu.cmake
native_tests armv7 -DCMAKE_TOOLCHAIN_FILE=targets/toolchains/armv7-linux-gnueabihf.cmake

echo "== Fuzz: libFuzzer harnesses (native/fuzz), 20 s each, two at a time"
cmake -S . -B build/fuzz -G Ninja -DES_BUILD_FUZZERS=ON -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build build/fuzz >/dev/null
bash native/fuzz/run.sh build/fuzz 20

echo "== Wheels: target CPython headers and emulated Arm roots for tests/test_wheels.py (cached under data/)"
bash recipes/wheels/prepare.sh

echo "== Python tests"
.venv/bin/pytest -p no:cacheprovider -m "not ray" tests

# Ray's servers listen on every interface whatever address they are given, so its tests run in
# a network namespace that holds only loopback (root, or unprivileged user namespaces, needed).
echo "== Python tests on a local Ray (network namespace: loopback only)"
if unshare -n true 2>/dev/null; then
  unshare -n sh -c 'ip link set lo up && exec .venv/bin/pytest -p no:cacheprovider -m ray tests'
elif unshare -rn true 2>/dev/null; then
  unshare -rn sh -c 'ip link set lo up && exec .venv/bin/pytest -p no:cacheprovider -m ray tests'
else
  echo "cannot create a network namespace (unshare -n): the Ray tests are not run" >&2
  exit 1
fi
