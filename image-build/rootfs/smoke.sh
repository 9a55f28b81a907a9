#!/usr/bin/env bash
# Smoke check of a built image: the arm64 Node in slot A runs `mbox --version` under qemu-user.
#   smoke.sh <rootfs dir | *.rootfs.tar.zst> [--expect <version>]
# 1. qemu-aarch64-static -L <rootfs> <rootfs>/opt/mbox/current/bin/node …/shared/cli/main.ts --version
# 2. the same Node loads the box's whole module graph (appliance/appliance.ts): --version alone
#    would not notice a module the slot lacks, which only the service's start would hit.
# 3. as root with binfmt for aarch64: chroot <rootfs> /usr/bin/mbox --version, i.e. the image's own
#    /bin/sh, the launcher in --cli mode and the slot's Node, as an operator on the box would run it.
set -euo pipefail

die() { echo "smoke: $*" >&2; exit 1; }
(($# >= 1)) || die "usage: smoke.sh <rootfs dir | rootfs .tar.zst> [--expect <version>]"
src=$1 expect=''
shift
while (($#)); do
  case $1 in
    --expect) (($# >= 2)) || die "--expect needs a value"; expect=$2; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
command -v qemu-aarch64-static >/dev/null || die "qemu-aarch64-static is missing (apt: qemu-user-static)"

tmp=''
cleanup() { if [[ -n $tmp ]]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT
if [[ -d $src ]]; then
  rootfs=$(cd "$src" && pwd)
elif [[ -f $src ]]; then
  tmp=$(mktemp -d)
  # Device nodes need root to create and are not what this checks.
  zstd -dc "$src" | tar -x -C "$tmp" --exclude='./dev/*' --no-same-owner 2>/dev/null ||
    zstd -dc "$src" | tar -x -C "$tmp" --exclude='./dev/*'
  rootfs=$tmp
else
  die "$src: neither a directory nor a file"
fi

slot=$rootfs/opt/mbox/current
[[ -e $slot/bin/node ]] || die "no $slot/bin/node (is current pointing at a slot?)"
if [[ -z $expect ]]; then
  expect=$(grep -o '"version" *: *"[^"]*"' "$slot/package.json" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/')
fi
[[ -n $expect ]] || die "cannot tell the expected version; pass --expect"

t0=$(date +%s%N)
got=$(timeout 300 qemu-aarch64-static -L "$rootfs" "$slot/bin/node" "$slot/shared/cli/main.ts" --version) ||
  die "node under qemu-aarch64 failed (exit $?)"
ms=$((($(date +%s%N) - t0) / 1000000))
[[ $got == "$expect" ]] || die "qemu-user: mbox --version printed '$got', expected '$expect'"
echo "smoke: qemu-user: mbox --version = $got (${ms} ms)"

t0=$(date +%s%N)
loaded=$(timeout 600 qemu-aarch64-static -L "$rootfs" "$slot/bin/node" --input-type=module \
  -e "const m = await import('$slot/appliance/appliance.ts'); console.log(typeof m.startAppliance)" 2>&1) ||
  die "the box's code does not load under qemu-aarch64: $(grep -m 1 'Error' <<<"$loaded" || tail -n 3 <<<"$loaded")"
[[ $loaded == function ]] || die "appliance/appliance.ts loaded but exports no startAppliance: $loaded"
echo "smoke: qemu-user: the appliance's modules load ($((($(date +%s%N) - t0) / 1000000)) ms)"

if [[ $(id -u) == 0 && -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] && grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  t0=$(date +%s%N)
  got=$(timeout 300 chroot "$rootfs" /usr/bin/mbox --version) || die "chroot: /usr/bin/mbox --version failed (exit $?)"
  ms=$((($(date +%s%N) - t0) / 1000000))
  [[ $got == "$expect" ]] || die "chroot: mbox --version printed '$got', expected '$expect'"
  echo "smoke: chroot (image sh + launcher + node): mbox --version = $got (${ms} ms)"
else
  echo "smoke: chroot check skipped (needs root and binfmt for aarch64)"
fi
