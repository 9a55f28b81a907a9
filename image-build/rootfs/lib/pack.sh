# shellcheck shell=bash
# shellcheck disable=SC2154  # globals (rootfs, work, out, ...) are set by build.sh, which sources this
# Outputs: the rootfs tarball, optionally a raw GPT disk image (boot | root | data), the Debian
# package list and SHA256SUMS. No loop mounts: each filesystem is made from a directory
# (mkfs.ext4 -d, mkfs.vfat + mcopy) and copied into the disk file at its offset.

# A stable UUID per (release, role): the same inputs give the same image.
stable_uuid() {
  local h
  h=$(printf '%s/%s/%s' "$app_version" "$SOURCE_DATE_EPOCH" "$1" | sha256sum | cut -c1-32)
  echo "${h:0:8}-${h:8:4}-4${h:13:3}-8${h:17:3}-${h:20:12}"
}

pack_outputs() {
  local name=mbox-$app_version-arm64 t0
  rm -f "$out/$name".* "$out/SHA256SUMS"
  # Every timestamp becomes SOURCE_DATE_EPOCH, so tar and mkfs see the same tree every time.
  find "$rootfs" -depth -exec touch -h --date="@$SOURCE_DATE_EPOCH" {} +

  log "packing $name.rootfs.tar.zst"
  t0=$(date +%s)
  tar --sort=name --format=posix --numeric-owner \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime="@$SOURCE_DATE_EPOCH" --xattrs --xattrs-include=security.capability \
    -C "$rootfs" -cf - . | zstd -q -T0 -15 -o "$out/$name.rootfs.tar.zst"
  log "tarball took $(($(date +%s) - t0)) s"

  dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Package} ${Version} ${Architecture}\n' >"$out/$name.packages.txt"

  if ((image)); then
    t0=$(date +%s)
    build_disk_image "$work/$name.img"
    log "compressing the disk image"
    zstd -q -T0 -15 --sparse -f "$work/$name.img" -o "$out/$name.img.zst"
    rm -f "$work/$name.img"
    log "disk image took $(($(date +%s) - t0)) s"
  fi
  (cd "$out" && sha256sum -- "$name".* >SHA256SUMS)
}

build_disk_image() {
  local img=$1 boot_mib=256 data_mib=256 used_mib slot_mib root_mib
  local data_tree=$work/data-tree

  # The data partition gets /var/lib/mbox; the root filesystem keeps an empty mount point.
  rm -rf "$data_tree"
  mv "$rootfs/var/lib/mbox" "$data_tree"
  mkdir -m 0755 "$rootfs/var/lib/mbox"
  touch -h --date="@$SOURCE_DATE_EPOCH" "$rootfs/var/lib/mbox" "$rootfs/var/lib"

  # Root: what is there now + room for slot B + the journal's cap (192M) + slack, in 64 MiB steps.
  used_mib=$(du -sm "$rootfs" | cut -f1)
  slot_mib=$(du -sm "$rootfs/opt/mbox/slots/a" | cut -f1)
  root_mib=$(((used_mib * 115 / 100 + slot_mib + 192 + 128 + 63) / 64 * 64))
  log "disk image: boot ${boot_mib} MiB, root ${root_mib} MiB (${used_mib} used), data ${data_mib} MiB (grows at first boot)"

  local ru du bu
  ru=$(stable_uuid root) du=$(stable_uuid data) bu=$(stable_uuid boot)
  rm -f "$work/root.img" "$work/data.img" "$work/boot.img"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L mbox-root -U "$ru" -E "hash_seed=$ru" \
    -d "$rootfs" "$work/root.img" "${root_mib}M"
  # Made small, grown at first boot: 4 KiB blocks and the usual inode ratio (mke2fs would pick the
  # "small" profile for 256 MiB), and reserved group descriptors for growing online to 4 TiB.
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L mbox-data -U "$du" -T default -b 4096 \
    -E "hash_seed=$du,resize=1073741824,root_owner=$mbox_uid:$mbox_gid" \
    -d "$data_tree" "$work/data.img" "${data_mib}M"
  mkfs.vfat -C -n MBOX-BOOT -i "${bu:0:8}" "$work/boot.img" $((boot_mib * 1024)) >/dev/null
  fill_boot "$work/boot.img"

  # Put the data tree back so a re-pack (or the smoke check) sees the whole root filesystem.
  rm -rf "$rootfs/var/lib/mbox"
  mv "$data_tree" "$rootfs/var/lib/mbox"

  local s=2048 bs=$((boot_mib * 2048)) rs=$((root_mib * 2048)) ds=$((data_mib * 2048))
  rm -f "$img"
  truncate -s $(((1 + boot_mib + root_mib + data_mib + 1) * 1024 * 1024)) "$img"
  sfdisk -q "$img" <<SFDISK
label: gpt
label-id: $(stable_uuid disk)
unit: sectors
first-lba: 2048
start=$s, size=$bs, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$(stable_uuid p1), name="mbox-boot"
start=$((s + bs)), size=$rs, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=$(stable_uuid p2), name="mbox-root"
start=$((s + bs + rs)), size=$ds, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$(stable_uuid p3), name="mbox-data"
SFDISK
  dd if="$work/boot.img" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
  dd if="$work/root.img" of="$img" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none
  dd if="$work/data.img" of="$img" bs=1M seek=$((1 + boot_mib + root_mib)) conv=notrunc,sparse status=none
  rm -f "$work/root.img" "$work/data.img" "$work/boot.img"
}

# The boot partition: the kernel and initramfs when --kernel (for qemu-system's -kernel/-initrd or
# a board's loader), and a note. Board-specific firmware/bootloaders are not part of this image.
fill_boot() {
  local fat=$1 stage=$work/boot-files k
  rm -rf "$stage" && mkdir -p "$stage"
  printf 'm-box %s boot partition.\nroot=LABEL=mbox-root; board-specific boot files go here.\n' "$app_version" >"$stage/README.txt"
  if ((kernel)); then
    k=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
    [[ -n $k ]] || die "--kernel, but no /boot/vmlinuz-* in the root filesystem"
    cp "$k" "$stage/vmlinuz"
    cp "$rootfs/boot/initrd.img-${k##*/vmlinuz-}" "$stage/initrd.img"
    echo "root=LABEL=mbox-root rw rootwait console=ttyAMA0 console=tty1" >"$stage/cmdline.txt"
  fi
  touch -h --date="@$SOURCE_DATE_EPOCH" "$stage"/*
  mcopy -m -i "$fat" "$stage"/* ::/
}
