#!/usr/bin/env bash
# Installs the real peers the integration tests talk to (dcmtk, Orthanc + plugins, gdcm, pydicom's
# test files, mosquitto, chromium for the dashboard) on Debian 12. Idempotent: when everything is installed it only makes sure
# no system Orthanc is running, because tests start their own Orthanc on loopback ports.
set -euo pipefail

PACKAGES=(dcmtk orthanc orthanc-dicomweb orthanc-gdcm libgdcm-tools python3-pydicom tmux iproute2 mosquitto chromium)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done

as_root() { [[ $(id -u) -eq 0 ]]; }

if ((${#missing[@]})); then
  install_cmd="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if ! as_root; then
    echo "install-peers: missing packages: ${missing[*]}" >&2
    echo "run as root:  apt-get update && $install_cmd" >&2
    exit 1
  fi
  # Debian's orthanc postinst starts the service via invoke-rc.d; a policy-rc.d that answers 101
  # stops that at the source. Docker images already ship one; only add (and later remove) our own.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  echo "install-peers: installing ${missing[*]}" >&2
  # Only refresh the lists when we actually have something to install (CI images often ship none).
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The system services (if any) would hold 4242/8042 and 1883 and collide with the tests' own
# Orthanc and mosquitto instances, which run on free loopback ports.
if as_root; then
  for svc in orthanc mosquitto; do
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
    fi
    if [[ -x /etc/init.d/$svc ]]; then
      "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
      update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
  # Only the packaged instance runs as the 'orthanc' user; test instances run as us.
  if id orthanc >/dev/null 2>&1; then
    for pid in $(pgrep -u orthanc -x Orthanc || true); do
      kill "$pid" 2>/dev/null || true
    done
  fi
fi

if busy=$(ss -Hltn '( sport = :4242 or sport = :8042 )' 2>/dev/null) && [[ -n $busy ]]; then
  echo "install-peers: warning: something still listens on 4242/8042:" >&2
  echo "$busy" >&2
fi
echo "install-peers: ok ($(dpkg-query -W -f='${Version}' dcmtk) dcmtk, $(dpkg-query -W -f='${Version}' orthanc) orthanc)" >&2
