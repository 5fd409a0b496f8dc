#!/usr/bin/env bash
# Build (once) a Debian 11 "bullseye" minbase chroot with Python 2.7, for testing the plugins'
# client under a real Python 2.7 (GIMP 2.10's Python). Cached: the built tree is packed into
# $CACHE/py27-bullseye.tar.zst and unpacked from there on later runs. Run as root.
# Prints the chroot's path on its last line.
set -euo pipefail
CACHE=${KIREI_CI_CACHE:-/var/cache/kirei-ci}
CHROOT=${KIREI_PY27_CHROOT:-$CACHE/py27-bullseye}
ARCHIVE=$CACHE/py27-bullseye.tar.zst
PKGS="python2.7-minimal libpython2.7-stdlib"
MARK=$CHROOT/.kirei-py27-ready
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive

need() { command -v "$1" >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }

if [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$PKGS" ]; then
  :
elif [ -f "$ARCHIVE" ]; then
  need zstd zstd
  rm -rf "$CHROOT"; mkdir -p "$CHROOT"
  tar -I zstd -xf "$ARCHIVE" -C "$CHROOT"
fi
if [ ! -f "$MARK" ] || [ "$(cat "$MARK")" != "$PKGS" ]; then
  need debootstrap debootstrap
  need zstd zstd
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  rm -rf "$CHROOT"; mkdir -p "$CHROOT/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/locale/*' \
    > "$CHROOT/etc/dpkg/dpkg.cfg.d/01-slim"
  debootstrap --variant=minbase --include="${PKGS// /,}" bullseye "$CHROOT" "$MIRROR" >/dev/null
  chroot "$CHROOT" apt-get clean
  echo "$PKGS" > "$MARK"
  tar -I 'zstd -T0 -3' -cf "$ARCHIVE.part" -C "$CHROOT" . && mv "$ARCHIVE.part" "$ARCHIVE"
fi
chroot "$CHROOT" /usr/bin/python2.7 -c 'import sys; sys.stderr.write("python %s in the bullseye chroot\n" % sys.version.split()[0])'
echo "$CHROOT"
