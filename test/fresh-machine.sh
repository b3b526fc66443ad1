#!/usr/bin/env bash
# fresh-machine.sh — the README's `make test` as a new user meets it: on a
# machine where none of the project's Debian packages is installed, in a tree
# with no build output.
#
#   test/fresh-machine.sh --chroot DIR
#       Debian bookworm debootstrapped into DIR (reused when DIR already holds
#       one; only make and git added, what a user needs to type `make`), this
#       repository's HEAD cloned into DIR/root/cllama, the shared test data
#       copied to DIR/root/shared, then the steps below run inside it.
#       Needs root and debootstrap; touches nothing outside DIR.
#
#   test/fresh-machine.sh --purge-this-machine
#       The steps themselves, on this machine: apt-get purge of every package
#       the Makefile installs (`make print-pkgs`) and what only they needed,
#       `git clean -xfd`, then `make test`. Only for a throw-away machine or
#       root: it removes packages other work on the machine may need.
#
# Environment: CLLAMA_SHARED (default ../shared) the shared test data;
# FRESH_MIRROR the Debian mirror (default http://deb.debian.org/debian);
# FRESH_JOBS make's -j (default 2).
set -euo pipefail

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

repo=$(cd "$(dirname "$0")/.." && pwd)
jobs=${FRESH_JOBS:-2}

purge_and_test() {
  cd "$repo"
  export DEBIAN_FRONTEND=noninteractive
  pkgs=$(make -s --no-print-directory print-pkgs)
  installed=""
  for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" && installed="$installed $p"
  done
  echo "== fresh-machine: purging:${installed:- (none installed)}"
  if [ -n "$installed" ]; then
    # shellcheck disable=SC2086
    apt-get purge -y -qq $installed >/dev/null
  fi
  apt-get autoremove --purge -y -qq >/dev/null
  for h in /usr/include/uv.h /usr/include/jansson.h /usr/share/llhttp; do
    if [ -e "$h" ]; then
      echo "fresh-machine: $h still there after the purge" >&2
      exit 1
    fi
  done
  echo "== fresh-machine: git clean -xfd"
  git clean -xfdq
  echo "== fresh-machine: make -j$jobs test (CLLAMA_SHARED=${CLLAMA_SHARED:-../shared})"
  make -j"$jobs" test
}

in_chroot() {
  local root=$1
  local shared=${CLLAMA_SHARED:-$repo/../shared}
  local mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
  [ "$(id -u)" = 0 ] || { echo "fresh-machine: --chroot needs root" >&2; exit 1; }
  [ -d "$shared/models" ] || { echo "fresh-machine: no shared data at $shared" >&2; exit 1; }
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  if [ ! -f "$root/etc/debian_version" ]; then
    command -v debootstrap >/dev/null || { echo "fresh-machine: apt-get install debootstrap" >&2; exit 1; }
    echo "== fresh-machine: debootstrap bookworm into $root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
      { tail -n 20 "$root.debootstrap.log"; exit 1; }
  fi
  mounts=()
  cleanup() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
  }
  trap cleanup EXIT
  mount -t proc proc "$root/proc" && mounts+=("$root/proc")
  mount --bind /dev "$root/dev" && mounts+=("$root/dev")
  mount --bind /dev/pts "$root/dev/pts" && mounts+=("$root/dev/pts")
  mount -t tmpfs tmpfs "$root/tmp" && mounts+=("$root/tmp")
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  printf 'deb %s bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$mirror" >"$root/etc/apt/sources.list"
  echo "== fresh-machine: make and git in the root (what a user needs to type make)"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends make git ca-certificates >/dev/null'
  echo "== fresh-machine: clone $(git -C "$repo" rev-parse --short HEAD) into $root/root/cllama"
  rm -rf "$root/root/cllama" "$root/root/shared"
  git clone -q --no-local "$repo" "$root/root/cllama"
  git -C "$root/root/cllama" checkout -q "$(git -C "$repo" rev-parse HEAD)"
  cp -a "$shared/." "$root/root/shared/" 2>/dev/null || { mkdir -p "$root/root/shared" && cp -a "$shared/." "$root/root/shared/"; }
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    CLLAMA_SHARED=/root/shared FRESH_JOBS="$jobs" \
    bash /root/cllama/test/fresh-machine.sh --purge-this-machine
}

case "${1:-}" in
--chroot)
  [ $# -eq 2 ] || usage
  in_chroot "$2"
  ;;
--purge-this-machine) purge_and_test ;;
*) usage ;;
esac
