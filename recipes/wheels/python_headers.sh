#!/usr/bin/env bash
# Fetches the target architectures' CPython headers from Debian packages (libpython3.X-dev), which the
# cross builds compile the extension against: the Include/ files plus the architecture's own pyconfig.h.
# One Debian suite per CPython version: bullseye 3.9, bookworm 3.11, trixie 3.13.
# Usage: bash recipes/wheels/python_headers.sh OUT_DIR   -> OUT_DIR/<arch>/usr/include/{python3.X,<triplet>/python3.X}
# Needs apt-get and network access to the Debian mirror; idempotent (skips what is there).
set -euo pipefail
out=${1:?usage: python_headers.sh OUT_DIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)  # absolute: apt reads relative Dir:: paths from /
mirror=${ES_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
declare -A suite_of=([3.9]=bullseye [3.11]=bookworm [3.13]=trixie)

fetch() {  # debian arch, python version
  local arch=$1 version=$2 suite=${suite_of[$2]}
  local dest="$out/$arch" stamp="$out/$arch/.libpython$version-dev"
  [ -e "$stamp" ] && return
  # A private apt state per suite and architecture: the host's apt configuration is left alone.
  local apt_dir="$out/apt/$suite-$arch"
  mkdir -p "$apt_dir"/{state/lists/partial,cache/archives/partial,deb} "$dest"
  echo "deb [arch=$arch signed-by=$keyring] $mirror $suite main" >"$apt_dir/sources.list"
  : >"$apt_dir/status"
  local apt=(apt-get -q -o "Dir::State=$apt_dir/state" -o "Dir::State::status=$apt_dir/status"
    -o "Dir::Cache=$apt_dir/cache" -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null" -o "APT::Architecture=$arch" -o APT::Sandbox::User=root -o "APT::Architectures::=$arch")
  "${apt[@]}" update >/dev/null
  (cd "$apt_dir/deb" && "${apt[@]}" download "libpython$version-dev:$arch" >/dev/null)
  dpkg-deb -x "$(ls "$apt_dir"/deb/libpython"$version"-dev_*.deb | head -1)" "$dest"
  rm -rf "$apt_dir" "$dest/usr/lib" "$dest/usr/share"  # package lists (40 MB a suite), static libpython: unused
  touch "$stamp"
  echo "libpython$version-dev:$arch ($suite) -> $dest"
}

for arch in ${ES_HEADER_ARCHS:-arm64 armhf}; do
  for version in ${ES_HEADER_PYTHONS:-3.9 3.11 3.13}; do
    fetch "$arch" "$version"
  done
done
