#!/usr/bin/env bash
# Run a command inside a chroot that .ci/debian_chroot.sh built (real GIMP and Krita for the tests),
# with host folders bind-mounted, /proc, a private /dev/shm, and the X server's sockets when DISPLAY
# is passed; everything is unmounted on exit, and the mount points it made are removed. The chroot
# shares the host's network, so a worker on the host's 127.0.0.1 is reachable. Only the variables
# named in PASS_ENV get in. Run as root.
#   usage: in_chroot.sh CHROOT [--bind SRC[:DST]]... [--cd DIR] COMMAND [ARGS...]
#   (DST is where SRC appears inside; by default the same path as outside)
set -euo pipefail
CHROOT=$(cd "$1" && pwd); shift
binds=(); cwd=/
while [ $# -gt 0 ]; do
  case $1 in
    --bind) binds+=("$2"); shift 2 ;;
    --cd) cwd=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: in_chroot.sh CHROOT [--bind SRC[:DST]]... [--cd DIR] COMMAND [ARGS...]" >&2; exit 2; }

mounted=(); made=()
cleanup() {
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"; done
  # only the empty folders made for mount points go: never a file, whatever a failed umount left
  for d in "${made[@]}"; do find "$d" -depth -type d -empty -delete 2>/dev/null || true; done
}
trap cleanup EXIT
mnt() {
  local tgt=${@: -1}
  if mountpoint -q "$tgt"; then echo "$tgt is already mounted (another run?)" >&2; exit 3; fi
  if [ ! -d "$tgt" ]; then  # remember the highest folder made here, to remove it afterwards
    local top=$tgt; while [ ! -d "$(dirname "$top")" ]; do top=$(dirname "$top"); done
    mkdir -p "$tgt"; made+=("$top")
  fi
  mount "$@"; mounted+=("$tgt")
}
for b in "${binds[@]}"; do
  src=${b%%:*}; dst=${b#*:}; [ "$b" = "$src" ] && dst=$src
  mnt --bind "$(cd "$src" && pwd)" "$CHROOT$dst"
done
mnt -t proc proc "$CHROOT/proc"
mnt -t tmpfs -o mode=1777,size=512m shm "$CHROOT/dev/shm"
if [[ " ${PASS_ENV:-} " == *" DISPLAY "* && -n "${DISPLAY:-}" ]]; then  # an X server's sockets, for windows
  mnt --bind /tmp/.X11-unix "$CHROOT/tmp/.X11-unix"
fi
envs=(PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8)
for v in ${PASS_ENV:-}; do [ -n "${!v:-}" ] && envs+=("$v=${!v}"); done
chroot "$CHROOT" /usr/bin/env -i "${envs[@]}" sh -c 'cd "$0" && exec "$@"' "$cwd" "$@" &
child=$!
# forwarded: killing this script must end the program too, or the mounts stay busy
trap 'kill -TERM $child 2>/dev/null || true' TERM INT
rc=0; wait $child || rc=$?
while kill -0 $child 2>/dev/null; do wait $child || rc=$?; done  # a trapped signal ends the first wait early
exit $rc
