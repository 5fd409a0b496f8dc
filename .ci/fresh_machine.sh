#!/usr/bin/env bash
# The README's two commands, exactly as written there, in a clean checkout on a clean Debian 12
# (debootstrap minbase, plus python3 and python3-venv only). Run as root.
# The machine's package-registry settings (pip.conf, its local wheels and CA certificates) are
# lent to the chroot read-only, as a user's machine has its own; KIREI_TORCH_SPEC picks the local
# CPU build of torch so that nothing pulls a multi-GB CUDA build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
base=$(bash "$ROOT/.ci/debian_chroot.sh" fresh-bookworm bookworm "python3 python3-venv" | tail -n 1)
FRESH=$(mktemp -d /tmp/kirei-fresh.XXXXXX)
mounted=()
cleanup() {
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"; done
  rm -rf "$FRESH"
}
trap cleanup EXIT
cp -a "$base/." "$FRESH/"  # a copy: the cached chroot stays pristine
mnt() { mkdir -p "${@: -1}"; mount "$@"; mounted+=("${@: -1}"); }
mnt -t proc proc "$FRESH/proc"
mnt --bind -o ro /etc/ssl/certs "$FRESH/etc/ssl/certs"
for d in /opt/wheels /opt/pypi /opt/pypi-more; do [ -d "$d" ] && mnt --bind -o ro "$d" "$FRESH$d"; done
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$FRESH/etc/pip.conf"
cp /etc/resolv.conf "$FRESH/etc/resolv.conf" 2>/dev/null || true
git clone -q "$ROOT" "$FRESH/kirei"

# the two commands, read from README.md's code blocks
mapfile -t commands < <(awk '/^```/{inblock=!inblock; next} inblock && /^python3 dev\.py /' "$ROOT/README.md")
[ "${#commands[@]}" -eq 2 ] || { echo "expected the README's two commands, found: ${commands[*]}"; exit 1; }
for cmd in "${commands[@]}"; do
  echo "=== fresh Debian 12: $cmd"
  chroot "$FRESH" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt KIREI_TORCH_SPEC=torch==2.13.0 \
    sh -c "cd /kirei && $cmd"
done
python3 - "$FRESH/kirei/out/sample.png" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as fh:
    head = fh.read(24)
w, h = struct.unpack(">II", head[16:24])
assert head[:8] == b"\x89PNG\r\n\x1a\n" and (w, h) == (466, 660), (w, h)
print("fresh Debian 12: out/sample.png is a %dx%d PNG; both README commands passed" % (w, h))
PY
