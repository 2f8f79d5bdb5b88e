#!/usr/bin/env bash
# `make filter` (after cargo): wasm-opt on the filter module, in place. Usage:
#   wasm_opt.sh MODULE WASM-OPT [FLAGS...]
# Cargo writes its own output back over MODULE on every build, even one with nothing to compile,
# so the result is cached under the sha256 of that output and the flags: an unchanged module costs
# a copy, not another ~15 s of wasm-opt. The cache holds one module (target/.../wasm-opt-cache/).
set -euo pipefail
module=$1
shift
cache=$(dirname "$module")/wasm-opt-cache
key=$({ sha256sum < "$module"; echo "$*"; } | sha256sum | cut -d' ' -f1)
if [ -f "$cache/$key.wasm" ]; then
  cp "$cache/$key.wasm" "$module.tmp"
elif [ -f "$cache/last-output.sha256" ] && [ "$(sha256sum < "$module")" = "$(cat "$cache/last-output.sha256")" ]; then
  exit 0 # already the optimized module
else
  before=$(stat -c %s "$module")
  started=$(date +%s)
  "$@" "$module" -o "$module.tmp"
  rm -rf "$cache"
  mkdir -p "$cache"
  cp "$module.tmp" "$cache/$key.wasm"
  sha256sum < "$module.tmp" > "$cache/last-output.sha256"
  echo "wasm-opt: $module $before -> $(stat -c %s "$module.tmp") bytes in $(( $(date +%s) - started )) s"
fi
mv "$module.tmp" "$module"
