#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the box's arm64 Debian root filesystem (debootstrap, second stage under qemu-user-static),
# installs the app into slot A, and packs a rootfs tarball and optionally a partitioned disk image.
# See image-build/README.md for the host packages it needs and what each output is.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE_BUILD=$(dirname "$HERE")
REPO=$(dirname "$IMAGE_BUILD")

usage() {
  cat <<'EOF'
usage: build.sh --out <dir> (--bundle <file.mbx> --pubkey <key.pem> [--pubkey ...] | --staged <dir>) [options]

  --out <dir>         where the outputs go (created; must be empty or hold a previous build)
  --bundle <file>     a signed bundle from `mbox bundle build`; verified with every --pubkey
  --pubkey <file>     release public key(s) the box pins (SPKI PEM); required with --bundle
  --staged <dir>      instead of a bundle: a directory laid out like a slot (bin/node for arm64,
                      shared/cli/main.ts, package.json, node_modules, ...); for development only
  --mirror <url>      Debian mirror (default: http://deb.debian.org/debian)
  --suite <name>      Debian suite (default: bookworm)
  --image             also write a partitioned raw disk image (boot, root, data)
  --kernel            install Debian's arm64 kernel + initramfs (needed to boot the disk image)
  --ssh-key <file>    install openssh-server and this authorized_keys file for root
  --hostname <name>   default: mbox
  --work <dir>        scratch space (default: <out>/work); kept for --reuse-base
  --reuse-base        reuse <work>/base from an earlier run with the same package list
  --dry-run           check the arguments and host tools, print the plan, build nothing

SOURCE_DATE_EPOCH fixes every timestamp in the outputs (default: the bundle's createdAt, or the
last commit of this repository).
EOF
}

die() { echo "build.sh: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

out='' bundle='' staged='' mirror=http://deb.debian.org/debian suite=bookworm
image=0 kernel=0 ssh_key='' hostname=mbox work='' reuse_base=0 dry_run=0
pubkeys=()
while (($#)); do
  case $1 in
    --out | --bundle | --pubkey | --staged | --mirror | --suite | --ssh-key | --hostname | --work)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --out) out=$2 ;; --bundle) bundle=$2 ;; --pubkey) pubkeys+=("$2") ;; --staged) staged=$2 ;;
        --mirror) mirror=$2 ;; --suite) suite=$2 ;; --ssh-key) ssh_key=$2 ;; --hostname) hostname=$2 ;;
        --work) work=$2 ;;
      esac
      shift 2 ;;
    --image) image=1; shift ;;
    --kernel) kernel=1; shift ;;
    --reuse-base) reuse_base=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

# --- validate everything before touching anything ---
[[ -n $out ]] || die "--out is required"
if [[ -n $bundle && -n $staged ]]; then die "give --bundle or --staged, not both"; fi
if [[ -z $bundle && -z $staged ]]; then die "give the app: --bundle <file.mbx> (or --staged <dir> for development)"; fi
if [[ -n $bundle ]]; then
  [[ -f $bundle ]] || die "--bundle $bundle: no such file"
  [[ $(head -c 2 "$bundle" | od -An -tx1 | tr -d ' \n') == 1f8b ]] || die "--bundle $bundle: not a gzip'd bundle (.mbx)"
  ((${#pubkeys[@]})) || die "--bundle needs --pubkey: the box pins the release key(s) it will accept"
fi
for k in "${pubkeys[@]}"; do
  grep -q 'BEGIN PUBLIC KEY' "$k" 2>/dev/null || die "--pubkey $k: not a PEM public key"
done
if [[ -n $staged ]]; then
  [[ -d $staged ]] || die "--staged $staged: not a directory"
  for f in bin/node shared/cli/main.ts package.json; do
    [[ -e $staged/$f ]] || die "--staged $staged: missing $f (a slot needs bin/node, shared/cli/main.ts, package.json)"
  done
  # ELF e_machine (bytes 18-19, little endian) 0xb7 = AArch64: an x64 node here would boot nowhere.
  machine=$(od -An -tx1 -j18 -N2 "$(readlink -f "$staged/bin/node")" | tr -d ' \n')
  [[ $machine == b700 ]] || die "--staged $staged: bin/node is not an arm64 executable (ELF machine $machine)"
fi
[[ -z $ssh_key || -f $ssh_key ]] || die "--ssh-key $ssh_key: no such file"
[[ $hostname =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || die "--hostname '$hostname' is not a valid host name"
[[ $suite =~ ^[a-z]+$ ]] || die "--suite '$suite' is not a Debian suite name"
[[ $mirror =~ ^https?:// ]] || die "--mirror '$mirror' is not an http(s) URL"
[[ -e $out && ! -d $out ]] && die "--out $out exists and is not a directory"
work=${work:-$out/work}

# Packages: minbase plus what a headless, self-updating Node appliance needs. No dcmtk: echoscu is
# for debugging on a workstation, not on the box.
packages=(systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus kmod
  ca-certificates libstdc++6 iproute2 netbase e2fsprogs fdisk logrotate tzdata)
[[ -n $ssh_key ]] && packages+=(openssh-server)

tools=(debootstrap qemu-aarch64-static update-binfmts systemctl systemd-sysusers tar zstd sha256sum)
((image)) && tools+=(sfdisk mkfs.ext4 mkfs.vfat mcopy)
missing=()
for t in "${tools[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done

if ((dry_run)); then
  echo "plan:"
  echo "  debootstrap --arch=arm64 --variant=minbase $suite from $mirror"
  echo "  packages: ${packages[*]}$( ((kernel)) && echo ' + linux-image-arm64 initramfs-tools zstd (apt in the chroot)')"
  echo "  app: ${bundle:+bundle $bundle (keys: ${pubkeys[*]})}${staged:+staged dir $staged} -> /opt/mbox/slots/a"
  echo "  outputs in $out: rootfs tarball$( ((image)) && echo ', raw disk image'), SHA256SUMS"
  echo "  work dir: $work$( ((reuse_base)) && echo ' (reusing base)')"
  ((${#missing[@]})) && echo "  missing host tools: ${missing[*]} (apt: debootstrap qemu-user-static binfmt-support fdisk e2fsprogs dosfstools mtools zstd)"
  [[ $(id -u) == 0 ]] || echo "  note: the build itself must run as root"
  exit 0
fi

((${#missing[@]} == 0)) || die "missing host tools: ${missing[*]} (apt: debootstrap qemu-user-static binfmt-support fdisk e2fsprogs dosfstools mtools zstd)"
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, file ownership)"

node=$REPO/.node/bin/node
[[ -x $node ]] || die "the repository's Node is missing ($node): run npm install first"
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
  SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
work=$(cd "$work" && pwd)
rootfs=$work/rootfs
started=$(date +%s)

# shellcheck source=lib/base.sh
. "$HERE/lib/base.sh"
# shellcheck source=lib/app.sh
. "$HERE/lib/app.sh"
# shellcheck source=lib/configure.sh
. "$HERE/lib/configure.sh"
# shellcheck source=lib/pack.sh
. "$HERE/lib/pack.sh"
# shellcheck source=lib/kernel.sh
. "$HERE/lib/kernel.sh"
trap umount_chroot EXIT

ensure_binfmt
build_base
log "copying the base into $rootfs"
rm -rf "$rootfs"
cp -a "$work/base" "$rootfs"
install_kernel
install_app
configure_rootfs
clean_rootfs
pack_outputs
log "done in $(($(date +%s) - started)) s; outputs in $out:"
for f in "$out"/*.zst "$out"/SHA256SUMS; do [[ -e $f ]] && printf '  %s\t%s\n' "$(du -h --apparent-size "$f" | cut -f1)" "${f##*/}" >&2; done
exit 0
