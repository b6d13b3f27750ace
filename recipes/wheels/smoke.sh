#!/usr/bin/env bash
# Smoke-tests a wheel from dist/ on an emulated Arm device: a fresh venv inside a Debian root made by
# arm_roots.sh (no compiler, no network: dependencies come from a wheelhouse or from Debian's packages),
# run under qemu-user through chroot. Prints each step's time under emulation and checks the transcript of
# the example against this machine's (x86_64) build.
#   bash recipes/wheels/smoke.sh bullseye-arm64|bookworm-arm64|bookworm-armhf [WHEEL]
# bullseye-arm64 (aarch64, Python 3.9, glibc 2.31) and bookworm-arm64 (aarch64, Python 3.11, Raspberry Pi OS
#   64-bit): pip installs the wheel with its dependencies, ONNX Runtime included, and `edge-speech transcribe`
#   runs the embedded model.
# bookworm-armhf (armv7l, Python 3.11): PyPI has no armv7l wheels of ONNX Runtime, LiteRT or soxr, and numpy and
#   PyYAML come from apt as on Raspberry Pi OS; the wheel goes in with --no-deps, and everything but the model
#   runs on the device (recipes/wheels/replay_transcribe.py: native features checked against this machine's,
#   recorded model outputs, native beam search + LM).
# Needs root (chroot, mounts in a private namespace) and qemu-user-static.
set -euo pipefail
cd "$(dirname "$0")/../.."
roots=${ES_ARM_ROOTS:-${EDGE_SPEECH_DATA:-data}/arm-roots}
mkdir -p "$roots" && roots=$(cd "$roots" && pwd)  # absolute: the chroot and unshare commands need it
name=${1:?usage: smoke.sh bullseye-arm64|bookworm-arm64|bookworm-armhf [WHEEL]}
root="$roots/$name"
case $name in
  bullseye-arm64) arch=aarch64 py=39 ;;
  bookworm-arm64) arch=aarch64 py=311 ;;
  bookworm-armhf) arch=armv7l py=311 ;;
  *) echo "error: unknown root '$name' (bullseye-arm64, bookworm-arm64 or bookworm-armhf)" >&2; exit 1 ;;
esac
[ -e "$root/.complete" ] || { echo "error: $root is missing: bash recipes/wheels/arm_roots.sh" >&2; exit 1; }
wheel=${2:-$(ls dist/edge_speech-*-cp$py-cp$py-manylinux_*_$arch.whl 2>/dev/null | sort -V | tail -1 || true)}
[ -f "$wheel" ] || { echo "error: no cp$py $arch wheel in dist/: bash recipes/wheels/build.sh $arch" >&2; exit 1; }
wav=recipes/default_model/examples/set_a_timer_for_ten_minutes.wav
bash recipes/wheels/binfmt.sh

# The reference transcript: this machine's own build of the same sources.
expected=$(.venv/bin/edge-speech transcribe "$wav" | cut -f2)
work=/tmp/es-wheel-smoke  # inside the root
rm -rf "${root:?}$work"
mkdir -p "$root$work/wheels"
trap 'rm -rf "${root:?}$work"' EXIT
cp "$wheel" "$root$work/wheels/"
cp "$wav" "$root$work/example.wav"
if [ "$arch" = armv7l ]; then
  venv_options=--system-site-packages  # numpy and PyYAML from apt
  install_options=--no-deps
  .venv/bin/python recipes/wheels/replay_transcribe.py --record "$root$work/reference.npz" "$wav"
  cp recipes/wheels/replay_transcribe.py "$root$work/"
  transcribe="venv/bin/python replay_transcribe.py --reference reference.npz example.wav"
else
  venv_options=
  install_options=
  cp "$roots/wheelhouse-$name"/*.whl "$root$work/wheels/"
  transcribe="venv/bin/edge-speech transcribe example.wav"
fi
cat >"$root$work/run.sh" <<SCRIPT
set -eu
cd $work
step() {  # label, command...
  label=\$1; shift
  start=\$(date +%s%N)
  "\$@"
  echo "time: \$label \$(( (\$(date +%s%N) - start) / 1000000 )) ms"
}
if command -v cc || command -v gcc; then echo "error: a C compiler is installed in the root" >&2; exit 1; fi
echo "machine: \$(uname -m), \$(python3 --version), glibc \$(getconf GNU_LIBC_VERSION | cut -d' ' -f2)"
step venv python3 -m venv $venv_options venv
step pip_install venv/bin/pip install --no-cache-dir --no-index --find-links wheels $install_options wheels/$(basename "$wheel")
step import venv/bin/python -c "import edge_speech._native as n; print('native:', n.__file__)"
step features venv/bin/edge-speech features example.wav
step transcribe $transcribe
SCRIPT
log="$roots/smoke-$name.log"
# /sys holds only the CPU lists: ONNX Runtime's CPU detection (cpuinfo) aborts without them (1.19), and the
# x86 host's real /sys makes it crash under qemu-user (1.32).
cpus="0-$(($(nproc) - 1))"
unshare --mount --fork sh -c "mount -t proc proc '$root/proc' && mount -t tmpfs cpus '$root/sys' &&
  mkdir -p '$root/sys/devices/system/cpu' && for list in possible present online; do
  echo $cpus >'$root/sys/devices/system/cpu/'\$list; done && mount --rbind /dev '$root/dev' && exec chroot '$root' /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
  sh $work/run.sh" 2>&1 | tee "$log"
got=$(sed -n "s|^[^\t]*example.wav\t||p" "$log" | tail -1)
if [ "$got" != "$expected" ]; then
  echo "error: $name transcribed '$got'; this machine's build says '$expected'" >&2
  exit 1
fi
echo "ok: $name ($(basename "$wheel")) transcribes '$got' like the x86_64 build"
