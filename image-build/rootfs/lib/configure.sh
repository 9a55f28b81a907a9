# shellcheck shell=bash
# shellcheck disable=SC2154  # globals (rootfs, work, out, ...) are set by build.sh, which sources this
# Everything on top of Debian: the service account, launcher, units, config skeleton, network,
# journald/logrotate, fstab; then what must not be baked into every box (ids, keys, caches).

configure_rootfs() {
  local r=$rootfs sd=$IMAGE_BUILD/systemd files=$HERE/files
  log "configuring the root filesystem"

  install -D -m 0644 "$sd/mbox.sysusers" "$r/usr/lib/sysusers.d/mbox.conf"
  systemd-sysusers --root="$r" >/dev/null
  mbox_uid=$(awk -F: '$1 == "mbox" { print $3 }' "$r/etc/passwd")
  mbox_gid=$(awk -F: '$1 == "mbox" { print $3 }' "$r/etc/group")
  [[ -n $mbox_uid && -n $mbox_gid ]] || die "systemd-sysusers did not create the mbox user"

  install -D -m 0755 "$IMAGE_BUILD/launcher/mbox-launch" "$r/usr/lib/mbox/mbox-launch"
  install -D -m 0755 "$IMAGE_BUILD/launcher/mbox" "$r/usr/bin/mbox"
  install -D -m 0755 "$sd/mbox-firstboot" "$r/usr/lib/mbox/mbox-firstboot"
  install -D -m 0755 "$sd/mbox-growdata" "$r/usr/lib/mbox/mbox-growdata"
  local u
  for u in mbox.service mbox-firstboot.service mbox-growdata.service; do
    install -D -m 0644 "$sd/$u" "$r/usr/lib/systemd/system/$u"
  done
  install -D -m 0644 "$sd/mbox.tmpfiles" "$r/usr/lib/tmpfiles.d/mbox.conf"
  install -D -m 0644 "$sd/journald-mbox.conf" "$r/usr/lib/systemd/journald.conf.d/mbox.conf"
  install -D -m 0644 "$sd/20-wired.network" "$r/usr/lib/systemd/network/20-wired.network"
  install -D -m 0644 "$sd/logrotate-mbox" "$r/etc/logrotate.d/mbox"
  install -D -m 0644 "$files/wait-online.conf" "$r/usr/lib/systemd/system/systemd-networkd-wait-online.service.d/mbox.conf"
  install -D -m 0644 "$files/dpkg-nodoc.cfg" "$r/etc/dpkg/dpkg.cfg.d/mbox-nodoc"
  install -D -m 0644 "$IMAGE_BUILD/README.md" "$r/usr/share/doc/mbox/README.md"

  # Config and data live on the data partition; /etc/mbox is where people look for them.
  install -D -m 0644 "$files/box.json" "$r/usr/share/mbox/box.json"
  mkdir -p "$r/var/lib/mbox/config" "$r/var/lib/mbox/log"
  install -m 0640 "$files/box.json" "$r/var/lib/mbox/config/box.json"
  rm -rf "$r/etc/mbox"
  ln -s /var/lib/mbox/config "$r/etc/mbox"
  chown -R "$mbox_uid:$mbox_gid" "$r/var/lib/mbox" "$r/opt/mbox"
  chmod 0750 "$r/var/lib/mbox" "$r/var/lib/mbox/config" "$r/var/lib/mbox/log"

  install -m 0644 "$files/fstab" "$r/etc/fstab"
  echo "$hostname" >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$hostname" >"$r/etc/hosts"
  printf 'deb %s %s main\n' "$mirror" "$suite" >"$r/etc/apt/sources.list"
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"
  ln -sf /usr/share/zoneinfo/Etc/UTC "$r/etc/localtime"
  echo Etc/UTC >"$r/etc/timezone"

  if [[ -n $ssh_key ]]; then
    install -D -m 0600 "$ssh_key" "$r/root/.ssh/authorized_keys"
    chmod 0700 "$r/root/.ssh"
    printf 'PasswordAuthentication no\nPermitRootLogin prohibit-password\n' >"$r/etc/ssh/sshd_config.d/mbox.conf"
    # Host keys are per box: removed below, made on the first start.
    printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' |
      install -D -m 0644 /dev/stdin "$r/etc/systemd/system/ssh.service.d/mbox-hostkeys.conf"
  fi

  # logrotate.timer does cron's one job here; cron only came in as logrotate's first alternative.
  systemctl --root="$r" disable cron.service >/dev/null 2>&1 || true
  # The OS changes only with a new image: no daily package-list downloads from a clinic network.
  systemctl --root="$r" disable apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
  systemctl --root="$r" set-default multi-user.target >/dev/null 2>&1
  systemctl --root="$r" enable mbox.service mbox-firstboot.service mbox-growdata.service \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service >/dev/null 2>&1
  if [[ -n $ssh_key ]]; then systemctl --root="$r" enable ssh.service >/dev/null 2>&1; fi
  return 0
}

clean_rootfs() {
  local r=$rootfs
  log "removing per-build and per-box state"
  rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* \
    "$r"/var/cache/ldconfig/aux-cache "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
    "$r"/var/lib/systemd/random-seed "$r"/var/lib/dbus/machine-id "$r"/etc/ssh/ssh_host_* \
    "$r"/etc/*- "$r"/tmp/* "$r"/var/tmp/* "$r"/root/.bash_history
  find "$r/var/log" -type f -delete
  mkdir -p "$r/var/lib/apt/lists/partial"
  # Empty, not absent: systemd treats an empty machine-id as "first boot" and writes a fresh one.
  : >"$r/etc/machine-id"
  # Password-change dates would otherwise be the build day.
  local days=$((SOURCE_DATE_EPOCH / 86400))
  sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\1$days:/" "$r/etc/shadow"
  # Manuals and translations are excluded for later installs by dpkg-nodoc.cfg; drop the ones debootstrap put there.
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/*
  find "$r/usr/share/doc" -mindepth 2 ! -name copyright ! -path '*/doc/mbox/*' \( -type f -o -type l \) -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  return 0
}
