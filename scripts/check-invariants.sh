#!/usr/bin/env bash
# Checks the architecture invariants of ARCHITECTURE.md / DESIGN.md.
# Exit status non-zero on the first one broken.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "INVARIANT BROKEN: $*" >&2; exit 1; }
deps() { cargo tree --offline -e normal -p "$1" --prefix none 2>/dev/null | awk '{print $1}' | sort -u; }

ours=$(deps sunrise-backend-api | grep '^sunrise' | grep -vx sunrise-backend-api || true)
[ -z "$ours" ] || fail "sunrise-backend-api depends on workspace crates: $ours"

ours=$(deps sunrise-backend-cpu | grep '^sunrise' | grep -vx 'sunrise-backend-cpu\|sunrise-backend-api' || true)
[ -z "$ours" ] || fail "sunrise-backend-cpu depends on workspace crates other than the ABI: $ours"

if grep -q 'backend-cuda' Cargo.toml; then
  deps sunrise | grep -qx sunrise-backend-cuda && fail "the core depends on sunrise-backend-cuda"
  ours=$(deps sunrise-backend-cuda | grep '^sunrise' | grep -vx 'sunrise-backend-cuda\|sunrise-backend-api' || true)
  [ -z "$ours" ] || fail "sunrise-backend-cuda depends on workspace crates other than the ABI: $ours"
fi

ours=$(deps sunrise-onnx | grep '^sunrise' | grep -vx 'sunrise-onnx\|sunrise\|sunrise-backend-api\|sunrise-backend-cpu' || true)
[ -z "$ours" ] || fail "sunrise-onnx depends on a backend crate other than through the core: $ours"
grep -q 'sunrise-backend' onnx/Cargo.toml && fail "sunrise-onnx names a backend crate in its manifest"

if grep -rn --include='*.toml' -e 'target-cpu=native' -e 'target-cpu = "native"' . --exclude-dir=target | grep -q .; then
  fail "target-cpu=native is set; Debian builds for the baseline ISA"
fi

bin=target/release/sunrise
[ -x "$bin" ] || bin=target/debug/sunrise
if [ -x "$bin" ]; then
  if ldd "$bin" | grep -Ei 'libcuda|libcudnn|libcublas|libnvrtc|libcudart' ; then
    fail "$bin links a CUDA library"
  fi
  echo "ldd $bin: no CUDA library"
fi
for so in target/release/libsunrise_backend_cuda.so target/debug/libsunrise_backend_cuda.so; do
  if [ -f "$so" ]; then
    if ldd "$so" | grep -Ei 'libcuda|libcudnn|libcublas|libnvrtc|libcudart'; then
      fail "$so links a CUDA library (all must be dlopened)"
    fi
    echo "ldd $so: no CUDA library"
  fi
done
echo "architecture invariants hold"
