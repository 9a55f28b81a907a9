# shellcheck shell=bash
# shellcheck disable=SC2016  # the single-quoted scripts are JavaScript for node -e
# shellcheck disable=SC2154  # globals (rootfs, work, out, ...) are set by build.sh, which sources this
# The app: slot A of the A/B layout (shared/update/slots.ts) under /opt/mbox, plus the pinned keys.

# Prints a field of a JSON file with the repository's Node (the host's, not the image's).
json_field() {
  "$node" -e 'const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]];
    if (typeof v !== "string") { console.error(`no string "${process.argv[2]}" in ${process.argv[1]}`); process.exit(1); }
    process.stdout.write(v);' "$1" "$2"
}

install_app() {
  local opt=$rootfs/opt/mbox slot=$rootfs/opt/mbox/slots/a
  rm -rf "$opt"
  mkdir -p "$opt/slots" "$opt/boot" "$opt/downloads"
  if [[ -n $bundle ]]; then
    install_bundle "$slot"
  else
    log "installing the staged app from $staged into slot a (development only: not signed)"
    cp -a "$staged" "$slot"
    # A symlinked runtime (handy when staging) would dangle inside the image.
    if [[ -L $slot/bin/node ]]; then
      rm "$slot/bin/node"
      cp -L "$staged/bin/node" "$slot/bin/node"
    fi
    app_version=$(json_field "$slot/package.json" version)
  fi
  [[ -x $slot/bin/node && -f $slot/shared/cli/main.ts ]] || die "slot a has no bin/node or shared/cli/main.ts after install"
  ln -s slots/a "$opt/current"
  # SlotState (shared/update/slots.ts): what the updater starts from on first boot.
  printf '{"versions":{"a":"%s","b":null},"failed":[],"inFlight":null}\n' "$app_version" >"$opt/state.json"

  local keys=$rootfs/usr/share/mbox/keys k id
  mkdir -p "$keys"
  for k in "${pubkeys[@]}"; do
    id=$("$node" --input-type=module -e '
      import { readFileSync } from "node:fs";
      const { keyIdOf } = await import(process.argv[2]);
      process.stdout.write(keyIdOf(readFileSync(process.argv[1], "utf8")));' "$k" "$REPO/shared/update/manifest.ts")
    install -m 0644 "$k" "$keys/$id.pem"
    log "pinned release key $id"
  done
  log "app $app_version in slot a ($(du -sh "$slot" | cut -f1))"
}

install_bundle() {
  local slot=$1 tmp=$work/bundle k ok=0 err
  log "verifying $bundle"
  for k in "${pubkeys[@]}"; do
    if err=$("$REPO/scripts/mbox" bundle verify "$bundle" --pubkey "$k" 2>&1); then ok=1; break; fi
  done
  ((ok)) || die "bundle $bundle does not verify with any --pubkey: $err"
  rm -rf "$tmp" && mkdir -p "$tmp"
  tar -xzf "$bundle" -C "$tmp" --no-same-owner
  [[ $(json_field "$tmp/manifest.json" arch) == arm64 ]] || die "bundle $bundle is not for arm64"
  app_version=$(json_field "$tmp/manifest.json" version)
  mv "$tmp/payload" "$slot"
  rm -rf "$tmp"
}
