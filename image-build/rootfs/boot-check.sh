#!/usr/bin/env bash
# Boots a built disk image (made with --image --kernel) in qemu-system-aarch64 and answers a DICOM
# C-ECHO from the host: the whole box — kernel, systemd units, data partition grown on first boot,
# the launcher, the app in slot A — without hardware.
#   boot-check.sh <mbox-*.img.zst | .img> [--grow-mib 1024] [--timeout 900] [--soak 90] [--keep]
# After the first answer it keeps the box running --soak seconds (past the 60 s watchdog) and asks
# again: the same service must answer, with no watchdog kill or restart in the journal.
# Needs qemu-system-arm (qemu-system-aarch64), mtools, zstd, and dcmtk's echoscu. TCG emulation: slow.
set -euo pipefail
die() { echo "boot-check: $*" >&2; exit 1; }
(($# >= 1)) || die "usage: boot-check.sh <image.img.zst | image.img> [--grow-mib N] [--timeout S] [--keep]"
src=$1 grow=1024 timeout=900 soak=90 keep=0
shift
while (($#)); do
  case $1 in
    --grow-mib) grow=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) die "unknown argument '$1'" ;;
  esac
done
for t in qemu-system-aarch64 mcopy zstd echoscu sfdisk; do command -v "$t" >/dev/null || die "$t is missing"; done

tmp=$(mktemp -d)
qpid=''
cleanup() {
  if [[ -n $qpid ]]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  if ((keep)); then echo "boot-check: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

img=$tmp/disk.img
if [[ $src == *.zst ]]; then zstd -dq "$src" -o "$img"; else cp --sparse=always "$src" "$img"; fi
# A bigger "card" than the image, so the first boot has a data partition to grow.
before=$(sfdisk -l -o Size "$img" 2>/dev/null | tail -n 1 | tr -d ' ')
truncate -s "+${grow}M" "$img"

# The boot partition is the first one: kernel and initramfs come from there, as a loader would take them.
start=$(sfdisk -d "$img" | awk -F'[=,]' '/name="mbox-boot"/ { gsub(/ /, "", $2); print $2 }')
dd if="$img" of="$tmp/boot.img" bs=512 skip="$start" count=524288 status=none
mcopy -i "$tmp/boot.img" ::/vmlinuz ::/initrd.img ::/cmdline.txt "$tmp/" || die "no kernel on the boot partition (build with --kernel)"
# The serial port last, so it is /dev/console and the journal (the app's log) reaches serial.log.
cmdline="$(sed -E 's/(^| )console=[^ ]*//g' "$tmp/cmdline.txt") console=tty1 console=ttyAMA0 systemd.journald.forward_to_console=1"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
serial=$tmp/serial.log
t0=$(date +%s)
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 2048 -nographic -monitor none \
  -kernel "$tmp/vmlinuz" -initrd "$tmp/initrd.img" -append "$cmdline" \
  -drive "if=virtio,format=raw,file=$img" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:11112" -device virtio-net-pci,netdev=n0 \
  -serial "file:$serial" &
qpid=$!
echo "boot-check: booting (qemu pid $qpid, DICOM on 127.0.0.1:$port, serial log $serial)"

ok=0
while (($(date +%s) - t0 < timeout)); do
  kill -0 "$qpid" 2>/dev/null || { tail -n 40 "$serial" >&2; die "qemu exited"; }
  if TCP_NODELAY=1 timeout 20 echoscu -to 10 -aec MBOX 127.0.0.1 "$port" >/dev/null 2>&1; then ok=1; break; fi
  sleep 5
done
secs=$(($(date +%s) - t0))
grep -aE 'mbox|growdata|Watchdog|watchdog' "$serial" | grep -av 'kernel:' | tail -n 25 || true
((ok)) || die "no C-ECHO answer within ${timeout} s"
echo "boot-check: C-ECHO answered by the booted image after ${secs} s (emulated)"

if ((soak > 0)); then
  sleep "$soak"
  TCP_NODELAY=1 timeout 20 echoscu -to 10 -aec MBOX 127.0.0.1 "$port" >/dev/null 2>&1 || die "no C-ECHO answer ${soak} s after the first one"
  starts=$(grep -ac 'Started mbox.service' "$serial" || true)
  if grep -aqE 'mbox.service: (Watchdog timeout|Main process exited|Failed with result)' "$serial" || ((starts != 1)); then
    grep -aE 'mbox.service' "$serial" | tail -n 10 >&2
    die "the service restarted during the ${soak} s soak (started ${starts} times)"
  fi
  echo "boot-check: still answering ${soak} s later (past WatchdogSec=60s), started once, no watchdog kill"
fi

kill "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
qpid=''
after=$(sfdisk -l -o Size "$img" 2>/dev/null | tail -n 1 | tr -d ' ')
echo "boot-check: data partition ${before} in the image, ${after} after the first boot (disk +${grow} MiB)"
[[ $after != "$before" ]] || die "the data partition did not grow"
