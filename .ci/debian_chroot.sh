#!/usr/bin/env bash
# Build (once) a Debian minbase chroot with some packages, for tests that need a real host
# program (GIMP and Krita from Debian 13, 14 and experimental, Python 2.7 from Debian 11). Cached:
# the built tree is packed into $CACHE/NAME.tar.zst and unpacked from there on later runs. Run as root.
#   usage: debian_chroot.sh NAME SUITE "PACKAGES" [FROM]   (prints the chroot's path on its last line)
#   FROM: a further suite (experimental) added to SUITE's sources, whose versions PACKAGES then take
set -euo pipefail
NAME=$1; SUITE=$2; PKGS=$3; FROM=${4:-}
CACHE=${KIREI_CI_CACHE:-/var/cache/kirei-ci}
CHROOT=$CACHE/$NAME
ARCHIVE=$CACHE/$NAME.tar.zst
MARK=$CHROOT/.kirei-ready
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive
need() { command -v "$1" >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }
need zstd zstd
# a run killed before its clean-up (.ci/in_chroot.sh) may have left host folders mounted inside:
# unmounted first, so that removing the chroot can never reach through a bind into them
unmount_inside() { awk -v c="$CHROOT/" 'index($2, c) == 1 {print $2}' /proc/self/mounts | sort -r |
                   while read -r m; do umount -l "$m"; done; }
ready() { [ -f "$MARK" ] && [ "$(cat "$MARK")" = "$SUITE${FROM:+/$FROM} $PKGS" ]; }

if ! ready && [ -f "$ARCHIVE" ]; then
  unmount_inside; rm -rf "$CHROOT"; mkdir -p "$CHROOT"
  tar -I zstd -xf "$ARCHIVE" -C "$CHROOT"
fi
if ! ready; then
  need debootstrap debootstrap
  unmount_inside; rm -rf "$CHROOT"; mkdir -p "$CHROOT/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' > "$CHROOT/etc/dpkg/dpkg.cfg.d/01-slim"
  # a debootstrap older than the suite (Debian 12's knows no forky) builds it with sid's script
  script=/usr/share/debootstrap/scripts/$SUITE; [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
  debootstrap --variant=minbase "$SUITE" "$CHROOT" "$MIRROR" "$script" > "$CHROOT.debootstrap.log" 2>&1 \
    || { tail -30 "$CHROOT.debootstrap.log" >&2; exit 1; }
  printf 'deb %s %s main\n' "$MIRROR" "$SUITE" ${FROM:+"$MIRROR" "$FROM"} > "$CHROOT/etc/apt/sources.list"
  # a mirror that serves a frozen copy of testing (as here) lets its Release's Valid-Until pass
  echo 'Acquire::Check-Valid-Until "false";' > "$CHROOT/etc/apt/apt.conf.d/99kirei-valid-until"
  printf '#!/bin/sh\nexit 101\n' > "$CHROOT/usr/sbin/policy-rc.d"; chmod +x "$CHROOT/usr/sbin/policy-rc.d"
  chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${FROM:+-t $FROM} $PKGS >/dev/null \
           && apt-get clean" \
    > "$CACHE/$NAME.log" 2>&1 || { tail -30 "$CACHE/$NAME.log" >&2; exit 1; }
  echo "$SUITE${FROM:+/$FROM} $PKGS" > "$MARK"
  tar -I 'zstd -T0 -3' -cf "$ARCHIVE.part" -C "$CHROOT" . && mv "$ARCHIVE.part" "$ARCHIVE"
fi
echo "$CHROOT"
