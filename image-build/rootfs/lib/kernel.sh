# shellcheck shell=bash
# shellcheck disable=SC2154  # globals (rootfs, work, out, ...) are set by build.sh, which sources this
# --kernel: Debian's arm64 kernel, installed with apt inside the chroot after the (shared) base, so
# its initramfs is made once and with the module list in files/ — not twice with "most" as a
# debootstrap --include would.

chroot_mounted=()
umount_chroot() {
  local m
  for ((i = ${#chroot_mounted[@]} - 1; i >= 0; i--)); do
    m=${chroot_mounted[i]}
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  chroot_mounted=()
}

install_kernel() {
  ((kernel)) || return 0
  local r=$rootfs t0
  t0=$(date +%s)
  log "installing linux-image-arm64 (initramfs with MODULES=list)"
  install -D -m 0644 "$HERE/files/initramfs.conf" "$r/etc/initramfs-tools/conf.d/mbox.conf"
  install -D -m 0644 "$HERE/files/initramfs-modules" "$r/usr/share/initramfs-tools/modules.d/mbox"
  mount -t proc proc "$r/proc" && chroot_mounted+=("$r/proc")
  mount -t sysfs sysfs "$r/sys" && chroot_mounted+=("$r/sys")
  mount --bind /dev "$r/dev" && chroot_mounted+=("$r/dev")
  # No service may start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d" && chmod 0755 "$r/usr/sbin/policy-rc.d"
  # The base has resolved's stub symlink, dangling here; configure_rootfs puts it back.
  rm -f "$r/etc/resolv.conf"
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  {
    chroot "$r" apt-get update -q &&
      chroot "$r" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold linux-image-arm64 initramfs-tools zstd &&
      chroot "$r" apt-get clean
  } >"$work/kernel.log" 2>&1 || { umount_chroot; tail -n 30 "$work/kernel.log" >&2; die "kernel install failed; log: $work/kernel.log"; }
  rm -f "$r/usr/sbin/policy-rc.d"
  umount_chroot
  ls "$r"/boot/vmlinuz-* "$r"/boot/initrd.img-* >/dev/null 2>&1 || die "no kernel or initramfs in /boot after the install"
  log "kernel $(basename "$(find "$r/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)") installed in $(($(date +%s) - t0)) s"
}
