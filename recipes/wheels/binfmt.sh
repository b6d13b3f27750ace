#!/usr/bin/env bash
# Lets the kernel run aarch64 and armhf programs through qemu-user-static (binfmt_misc), so that a Debian
# root for those architectures works under chroot. Needs root and the qemu-user-static package; idempotent.
set -euo pipefail
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
for arch in aarch64 arm; do
  conf=/usr/lib/binfmt.d/qemu-$arch.conf
  [ -e "$conf" ] || { echo "error: $conf missing: apt-get install qemu-user-static" >&2; exit 1; }
  [ -e "$binfmt/qemu-$arch" ] || cat "$conf" >"$binfmt/register"
done
