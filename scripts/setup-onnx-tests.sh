#!/usr/bin/env bash
# Installs the ONNX backend test data that tests/tests/onnx_conformance.rs
# runs: the `onnx` wheel from PyPI (its onnx/backend/test/data: node, light,
# simple, pytorch-converted, pytorch-operator), unpacked under
# target/onnx-data. Test-only; nothing in sunrise links or imports it.
# 1.19.1 is the newest release whose wheel still ships the node suite.
#
# Usage: scripts/setup-onnx-tests.sh   (idempotent)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/target/onnx-data"
version=1.19.1
if [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ]; then
  echo "ONNX test data $version already in $dest"
  exit 0
fi
rm -rf "$dest"
python3 -m pip install -q --disable-pip-version-check --no-deps --target "$dest" "onnx==$version"
echo "$version" >"$dest/.version"
echo "ONNX test data $version in $dest/onnx/backend/test/data"
