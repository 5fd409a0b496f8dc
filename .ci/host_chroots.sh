#!/usr/bin/env bash
# The Debian chroots with real GIMP and Krita that tests/test_gimp.py and tests/test_krita.py run the
# plug-ins in: one per Debian release, both programs in each (they share the base system and Python):
#   hosts-trixie  Debian 13: GIMP 3.0, Krita 5.2
#   hosts-forky   Debian 14 (testing): GIMP 3.2, Krita 5.3
#   hosts-krita6  Debian 14 with experimental's Krita 6 (Qt 6, PyQt6; no PyQt5 in it)
# (Krita 5.1 is this machine's own Debian 12 krita, which .ci/run installs.) Built once, then cached
# by .ci/debian_chroot.sh in $KIREI_CI_CACHE. Run as root; says how long each took and what it holds.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
build() {  # NAME SUITE PACKAGES [FROM]
  local t0 chroot held
  t0=$(date +%s)
  chroot=$(bash "$HERE/debian_chroot.sh" "$@" | tail -n 1)
  held=$(chroot "$chroot" dpkg-query -W -f '${Package} ${Version}, ' gimp krita python3 2>/dev/null || true)
  echo "$chroot ready in $(( $(date +%s) - t0 )) s: ${held%, }"
}
# the GIMP 3.0 chroot that hosts-trixie replaces (unless something is still mounted in it)
old=${KIREI_CI_CACHE:-/var/cache/kirei-ci}/gimp3-trixie
if [ -d "$old" ] && ! grep -q " $old/" /proc/self/mounts; then rm -rf "$old" "$old.tar.zst" "$old.log"; fi
build hosts-trixie trixie "gimp krita python3-pyqt5 python3-pytest"
build hosts-forky forky "gimp krita python3-pyqt5 python3-pytest"
build hosts-krita6 forky "krita python3-pyqt6 python3-pytest" experimental
