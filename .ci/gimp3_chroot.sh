#!/usr/bin/env bash
# Build (once) a Debian 13 "trixie" chroot with GIMP 3.0 and its Python, for testing the GIMP 3
# plug-in in real GIMP. Cached: the tree is packed into $CACHE/gimp3-trixie.tar.zst and unpacked
# from there on later runs. Run as root. Prints the chroot's path on its last line.
set -euo pipefail
CACHE=${KIREI_CI_CACHE:-/var/cache/kirei-ci}
CHROOT=${KIREI_GIMP3_CHROOT:-$CACHE/gimp3-trixie}
ARCHIVE=$CACHE/gimp3-trixie.tar.zst
PKGS="gimp python3-pytest"
MARK=$CHROOT/.kirei-gimp3-ready
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive
need() { command -v "$1" >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }
need zstd zstd

ready() { [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$PKGS" ]; }
if ! ready && [ -f "$ARCHIVE" ]; then
  rm -rf "$CHROOT"; mkdir -p "$CHROOT"
  tar -I zstd -xf "$ARCHIVE" -C "$CHROOT"
fi
if ! ready; then
  need debootstrap debootstrap
  rm -rf "$CHROOT"; mkdir -p "$CHROOT/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' > "$CHROOT/etc/dpkg/dpkg.cfg.d/01-slim"
  debootstrap --variant=minbase trixie "$CHROOT" "$MIRROR" >/dev/null
  printf 'deb %s trixie main\ndeb %s trixie-updates main\n' "$MIRROR" "$MIRROR" > "$CHROOT/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' > "$CHROOT/usr/sbin/policy-rc.d"; chmod +x "$CHROOT/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
  chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS >/dev/null && apt-get clean"
  echo "$PKGS" > "$MARK"
  tar -I 'zstd -T0 -3' -cf "$ARCHIVE.part" -C "$CHROOT" . && mv "$ARCHIVE.part" "$ARCHIVE"
fi
chroot "$CHROOT" /usr/bin/env -i PATH=/usr/bin:/bin gimp-console-3.0 --version >&2
echo "$CHROOT"
