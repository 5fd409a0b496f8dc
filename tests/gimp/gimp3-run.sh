#!/usr/bin/env bash
# Run a command inside the GIMP 3 chroot with WORKDIR bind-mounted at /project (and /proc, a
# private /dev/shm, and the X sockets when DISPLAY is passed); everything is unmounted on exit. The chroot shares the host's network, so
# a worker on the host's 127.0.0.1 is reachable. Only the variables named in PASS_ENV get in.
#   usage: gimp3-run.sh CHROOT WORKDIR COMMAND [ARGS...]
set -euo pipefail
CHROOT=$1; WORK=$(cd "$2" && pwd); shift 2
mkdir -p "$CHROOT/project" "$CHROOT/dev/shm"
mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"; done; }
trap cleanup EXIT
mnt() { local tgt=${@: -1}; if mountpoint -q "$tgt"; then echo "$tgt is already mounted (another run?)" >&2; exit 3; fi
        mount "$@"; mounted+=("$tgt"); }
mnt --bind "$WORK" "$CHROOT/project"
mnt -t proc proc "$CHROOT/proc"
mnt -t tmpfs -o mode=1777,size=512m shm "$CHROOT/dev/shm"
if [[ " ${PASS_ENV:-} " == *" DISPLAY "* && -n "${DISPLAY:-}" ]]; then  # an X server's sockets, for windows
  mkdir -p "$CHROOT/tmp/.X11-unix"; mnt --bind /tmp/.X11-unix "$CHROOT/tmp/.X11-unix"
fi
envs=(PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8)
for v in ${PASS_ENV:-}; do [ -n "${!v:-}" ] && envs+=("$v=${!v}"); done
chroot "$CHROOT" /usr/bin/env -i "${envs[@]}" sh -c 'cd /project && exec "$@"' sh "$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null || true' TERM INT
rc=0; wait $child || rc=$?
exit $rc
