#!/usr/bin/env bash
# Reproduce src/mnistlab/web/ort/ from npm: onnxruntime-web at the pinned version, only its wasm backend.
#
# The static site of `mnistlab export --web` runs the model with these files, shipped inside the site (no CDN):
# ort.wasm.bundle.min.mjs (the API with the wasm glue built in) and the one .wasm it loads. SHA256SUMS lists them,
# and tests/export/test_web_export.py checks the files against it and this script's VERSION against ort/VERSION.
# Usage: scripts/vendor_ort_web.sh (from the repository's root; needs npm and the registry).
set -euo pipefail
VERSION=1.30.0
FILES=(ort.wasm.bundle.min.mjs ort-wasm-simd-threaded.wasm)  # the MIT licence notice heads the .mjs
dest="$(cd "$(dirname "$0")/.." && pwd)/src/mnistlab/web/ort"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-web@$VERSION" >/dev/null && tar xzf "onnxruntime-web-$VERSION.tgz")
rm -rf "$dest" && mkdir -p "$dest"
for f in "${FILES[@]}"; do cp "$tmp/package/dist/$f" "$dest/"; done
echo "$VERSION" >"$dest/VERSION"
(cd "$dest" && sha256sum "${FILES[@]}" VERSION >SHA256SUMS)
du -b "$dest"/* | sort -n
