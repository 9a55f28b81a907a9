# shellcheck shell=bash
# shellcheck disable=SC2154  # globals (rootfs, work, out, ...) are set by build.sh, which sources this
# The Debian base: binfmt for arm64 binaries, then debootstrap (both stages) into <work>/base.

# Foreign binaries run through the kernel's binfmt_misc + qemu-aarch64-static. Debian registers it
# with the F (fix-binary) flag, so the emulator need not be copied into the chroot.
ensure_binfmt() {
  local bm=/proc/sys/fs/binfmt_misc
  if [[ ! -e $bm/status ]]; then
    log "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc "$bm"
  fi
  if [[ ! -e $bm/qemu-aarch64 ]]; then
    log "registering qemu-aarch64 with binfmt_misc"
    update-binfmts --enable qemu-aarch64 || update-binfmts --import qemu-aarch64
  fi
  grep -qx enabled "$bm/qemu-aarch64" || die "binfmt entry qemu-aarch64 is not enabled"
  grep -q '^flags: .*F' "$bm/qemu-aarch64" || die "binfmt entry qemu-aarch64 lacks the F flag; the chroot cannot find qemu"
}

build_base() {
  local base=$work/base stamp
  stamp=$(printf '%s\n' "$suite" "$mirror" "${packages[@]}" | sha256sum | cut -c1-16)
  if ((reuse_base)) && [[ -f $work/base.stamp && $(cat "$work/base.stamp") == "$stamp" ]]; then
    log "reusing the Debian base in $base"
    return 0
  fi
  rm -rf "$base" "$work/base.stamp"
  log "debootstrap $suite arm64 (minbase + ${#packages[@]} packages) from $mirror"
  local t0
  t0=$(date +%s)
  # One call runs both stages: debootstrap sees the foreign arch and chroots into the second stage,
  # which binfmt hands to qemu. --merged-usr is bookworm's default layout.
  debootstrap --arch=arm64 --variant=minbase --merged-usr \
    --include="$(IFS=,; echo "${packages[*]}")" \
    "$suite" "$base" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed; log: $work/debootstrap.log"; }
  echo "$stamp" >"$work/base.stamp"
  log "debootstrap took $(($(date +%s) - t0)) s"
}
