#!/usr/bin/env bash
# Installs the peers `sunrise bench gemm|conv|train` measure beside ours:
#   - OpenBLAS (Debian's libopenblas, pthread flavour) for `bench gemm`, and
#     as the libblas.so.3 Debian's PyTorch calls (with only the reference
#     libblas3 installed, torch's GEMM is 10x slower: no fair peer);
#   - Debian's own PyTorch (python3-torch, CPU, from main) for `bench train`,
#     run with /usr/bin/python3;
#   - ONNX Runtime's CPU provider, onnx and numpy (PyPI) for `bench conv`.
# Idempotent: installs only what is missing. Nothing in sunrise links either;
# the bench dlopens OpenBLAS and runs scripts/onnxruntime_conv_bench.py.
#
# Usage: scripts/setup-bench-peers.sh [--no-apt] [--no-pip]
# Environment: PYTHON (default python3), PIP_ARGS (extra pip arguments,
# e.g. "--user" or "--break-system-packages").
set -euo pipefail

apt=1
pip=1
for a in "$@"; do
  case "$a" in
    --no-apt) apt=0 ;;
    --no-pip) pip=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option: $a" >&2; exit 2 ;;
  esac
done

have_openblas() {
  ldconfig -p 2>/dev/null | grep -Eq 'libopenblas\.so\.0|libopenblas\.so '
}

if [ "$apt" = 1 ]; then
  if have_openblas; then
    echo "OpenBLAS: already installed"
  else
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread \
      || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0
    have_openblas && echo "OpenBLAS: installed" || { echo "OpenBLAS: install failed" >&2; exit 1; }
  fi
  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "PyTorch (python3-torch): already installed"
  else
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch
    /usr/bin/python3 -c 'import torch; print("PyTorch (python3-torch): installed", torch.__version__)'
  fi
fi

if [ "$pip" = 1 ]; then
  py="${PYTHON:-python3}"
  command -v "$py" >/dev/null || { echo "$py not found; install python3" >&2; exit 1; }
  if "$py" -c 'import onnxruntime, onnx, numpy' 2>/dev/null; then
    echo "ONNX Runtime: already installed ($("$py" -c 'import onnxruntime; print(onnxruntime.__version__)'))"
  else
    # shellcheck disable=SC2086 # PIP_ARGS is a word list on purpose
    if ! "$py" -m pip install --quiet ${PIP_ARGS:-} onnxruntime onnx numpy; then
      echo "pip failed. On a Debian-managed python either use a venv" >&2
      echo "  (python3 -m venv V; PYTHON=V/bin/python3 $0 --no-apt; sunrise bench conv --python V/bin/python3)" >&2
      echo "or PIP_ARGS='--user --break-system-packages' $0 --no-apt" >&2
      exit 1
    fi
    "$py" -c 'import onnxruntime; print("ONNX Runtime: installed", onnxruntime.__version__)'
  fi
fi
