#!/usr/bin/env bash
# The whole test suite: lint and type checks, the C unit tests (native, under AddressSanitizer +
# UBSan, and cross-compiled for aarch64 and armv7 under qemu), a bounded libFuzzer run over the C
# parsers and decoders, then the Python tests (tests/test_fuzz_parsers.py is the Python fuzz budget).
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

echo "== Python tests"
.venv/bin/pytest -p no:cacheprovider tests
