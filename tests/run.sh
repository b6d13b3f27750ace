#!/usr/bin/env bash
# The whole test suite: lint and type checks, the C unit tests (native, under AddressSanitizer +
# UBSan, and cross-compiled for aarch64 and armv7 under qemu), then the Python tests.
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

echo "== Python tests"
.venv/bin/pytest -p no:cacheprovider tests
