#!/usr/bin/env bash
# Builds the sunrise CUDA emulator (tests only; never shipped): stand-ins
# for libcuda.so.1, libnvrtc.so.12, libcublas.so.12, libcublasLt.so.12 and
# libcudnn.so.9 that run the plugin's kernels on the CPU, so the plugin's
# host code and its CUDA C can be checked against the CPU backend without a
# GPU. Usage: build.sh OUTDIR; then LD_LIBRARY_PATH=OUTDIR.
# It proves nothing about real GPUs: scripts/gpu-check.sh does that.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh OUTDIR}"
mkdir -p "$out"
cp "$here/sr_emu_shim.h" "$out/"
cxx="g++ -std=c++20 -O1 -fPIC -shared -pthread -Wall -Wno-unknown-pragmas"
$cxx -I"$here" "$here/libcuda.cpp" -o "$out/libcuda.so.1" -Wl,-soname,libcuda.so.1 -ldl
$cxx "$here/libnvrtc.cpp" -o "$out/libnvrtc.so.12" -Wl,-soname,libnvrtc.so.12 -ldl
$cxx "$here/libcublas.cpp" -o "$out/libcublas.so.12" -Wl,-soname,libcublas.so.12
$cxx "$here/libcublasLt.cpp" -o "$out/libcublasLt.so.12" -Wl,-soname,libcublasLt.so.12
$cxx "$here/libcudnn.cpp" -o "$out/libcudnn.so.9" -Wl,-soname,libcudnn.so.9
echo "CUDA emulator built in $out (LD_LIBRARY_PATH=$out)"
