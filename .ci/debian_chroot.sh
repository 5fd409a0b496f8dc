#!/usr/bin/env bash
# Build (once) a Debian minbase chroot with some packages, for tests that need a real host
# program (GIMP 3.0 from Debian 13, Python 2.7 from Debian 11). Cached: the built tree is packed
# into $CACHE/NAME.tar.zst and unpacked from there on later runs. Run as root.
#   usage: debian_chroot.sh NAME SUITE "PACKAGES"     (prints the chroot's path on its last line)
set -euo pipefail
NAME=$1; SUITE=$2; PKGS=$3
CACHE=${KIREI_CI_CACHE:-/var/cache/kirei-ci}
CHROOT=$CACHE/$NAME
ARCHIVE=$CACHE/$NAME.tar.zst
MARK=$CHROOT/.kirei-ready
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive
need() { command -v "$1" >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }
need zstd zstd
ready() { [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$SUITE $PKGS" ]; }

if ! ready && [ -f "$ARCHIVE" ]; then
  rm -rf "$CHROOT"; mkdir -p "$CHROOT"
  tar -I zstd -xf "$ARCHIVE" -C "$CHROOT"
fi
if ! ready; then
  need debootstrap debootstrap
  rm -rf "$CHROOT"; mkdir -p "$CHROOT/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' > "$CHROOT/etc/dpkg/dpkg.cfg.d/01-slim"
  debootstrap --variant=minbase "$SUITE" "$CHROOT" "$MIRROR" >/dev/null
  printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$CHROOT/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' > "$CHROOT/usr/sbin/policy-rc.d"; chmod +x "$CHROOT/usr/sbin/policy-rc.d"
  chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS >/dev/null && apt-get clean" \
    > "$CACHE/$NAME.log" 2>&1 || { tail -30 "$CACHE/$NAME.log" >&2; exit 1; }
  echo "$SUITE $PKGS" > "$MARK"
  tar -I 'zstd -T0 -3' -cf "$ARCHIVE.part" -C "$CHROOT" . && mv "$ARCHIVE.part" "$ARCHIVE"
fi
echo "$CHROOT"
