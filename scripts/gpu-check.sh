#!/usr/bin/env bash
# The CUDA plugin checked on a real GPU, in two steps, because the GPU
# machine has no Rust toolchain:
#
#   scripts/gpu-check.sh bundle   # here: builds (release) the `sunrise`
#                                 # command, libsunrise_backend_cuda.so and
#                                 # the cuda_conformance test binary, strips
#                                 # them and puts them with the scripts in
#                                 # gpu-bundle/ (git-ignored, ~20 MiB)
#   scripts/gpu-check.sh run      # on the GPU machine, from the same tree
#                                 # (or bash gpu-bundle/gpu-check.sh run)
#
# `run` prints, in order: the GPU (nvidia-smi); `sunrise doctor` for
# SUNRISE_DEVICE=cuda; `sunrise conformance --device cuda` (the library's
# suite: every op the plugin lists against the CPU backend, forward and
# backward, buffers, error paths, a short training run); the digits CNN
# trained on both devices within an accuracy band; cold start (empty kernel cache) and warm start of
# `SUNRISE_DEVICE=cuda sunrise train --epochs 1`, then a full training run
# on the GPU and on the CPU with their accuracy; `sunrise bench cuda`
# beside PyTorch on the same GPU (scripts/torch_cuda_bench.py, strict f32);
# then, LAST, a table: case, ours, PyTorch, ratio, target. Full logs go to
# $OUT/gpu-check (or a temporary directory, printed). It takes about three
# minutes on an H100 (an estimate: not yet run on one); every step has a
# time limit, and all of them together GPU_CHECK_DEADLINE seconds (default
# 540), so the summary and the table always print.
#
# The plugin binds the CUDA 12 library names (libcublas.so.12,
# libnvrtc.so.12, ...) and also tries the unversioned ones. Where the
# loader only knows CUDA 13 (libcublas.so.13, ...), `run` links the
# unversioned names to them in a private directory put first on
# LD_LIBRARY_PATH for our commands (not for PyTorch), and says so.
#
# Exit status (run): 0 when every step passed (ratios below target are
# reported, not failures), 1 when a step failed, 2 for a usage error,
# 3 when there is no bundle or no NVIDIA GPU here.
# Environment: GPU_BUNDLE (bundle directory), GPU_CHECK_SECONDS (time per
# benchmark measurement, default 1), GPU_CHECK_DEADLINE (seconds for all
# the steps, default 540), PYTHON (default python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---- bundle ---------------------------------------------------------------

bundle() {
  local root out exe size
  root=$(cd "$HERE/.." && pwd)
  cd "$root"
  out=${GPU_BUNDLE:-$root/gpu-bundle}
  echo "== building (release): the sunrise command and the cuda plugin"
  cargo build --release -p sunrise-cli -p sunrise-backend-cuda
  echo "== building (release): the cuda_conformance test binary"
  exe=$(cargo test --release --no-run -p sunrise-tests --test cuda_conformance \
          --message-format=json \
        | grep '"reason":"compiler-artifact"' \
        | grep '"name":"cuda_conformance"' \
        | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -n 1 || true)
  if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "gpu-check: no cuda_conformance executable in cargo's output" >&2
    exit 1
  fi
  rm -rf "$out"
  mkdir -p "$out"
  cp target/release/sunrise "$out/sunrise"
  cp target/release/libsunrise_backend_cuda.so "$out/libsunrise_backend_cuda.so"
  cp "$exe" "$out/cuda_conformance"
  if command -v strip >/dev/null; then
    # Debug info only: symbol names stay for backtraces; the plugin's
    # dynamic symbols are untouched.
    strip --strip-debug "$out/sunrise" "$out/libsunrise_backend_cuda.so" "$out/cuda_conformance"
  else
    echo "gpu-check: strip not found; the bundle keeps its debug info"
  fi
  cp scripts/gpu-check.sh scripts/torch_cuda_bench.py "$out/"
  chmod +x "$out/gpu-check.sh" "$out/sunrise" "$out/cuda_conformance"
  {
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), $(rustc --version)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "glibc: $(ldd --version 2>/dev/null | head -n 1)"
    (cd "$out" && sha256sum sunrise libsunrise_backend_cuda.so cuda_conformance gpu-check.sh torch_cuda_bench.py)
  } > "$out/MANIFEST"
  if ldd "$out/libsunrise_backend_cuda.so" | grep -Ei 'libcuda|libcudnn|libcublas|libnvrtc|libcudart'; then
    echo "gpu-check: the plugin links a CUDA library; it must dlopen them" >&2
    exit 1
  fi
  size=$(du -sk "$out" | cut -f1)
  if [ "$size" -ge $((60 * 1024)) ]; then
    echo "gpu-check: the bundle is ${size} KiB; it must stay under 60 MiB to travel" >&2
    exit 1
  fi
  echo "== bundle: $out ($((size / 1024)) MiB)"
  ls -l "$out"
  cat "$out/MANIFEST"
  echo "next, on the GPU machine: bash scripts/gpu-check.sh run   (or bash gpu-bundle/gpu-check.sh run)"
}

# ---- run ------------------------------------------------------------------

# The bundle: $GPU_BUNDLE, this script's own directory when it is the
# bundle's copy, else gpu-bundle/ beside scripts/.
find_bundle() {
  if [ -n "${GPU_BUNDLE:-}" ]; then
    echo "$GPU_BUNDLE"
  elif [ -x "$HERE/sunrise" ] && [ -f "$HERE/libsunrise_backend_cuda.so" ]; then
    echo "$HERE"
  else
    echo "$(cd "$HERE/.." && pwd)/gpu-bundle"
  fi
}

# Can the dynamic loader open library NAME (as dlopen would)?
loadable() {
  if command -v "$PYTHON" >/dev/null; then
    "$PYTHON" -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$1" 2>/dev/null
  else
    ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$1 "
  fi
}

# The path of the first library named exactly NAME in the loader cache.
cached_path() {
  ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n { print $NF; exit }'
}

# The path of NAME inside Python's nvidia-* packages (pip wheels), if any.
python_path() {
  command -v "$PYTHON" >/dev/null || return 0
  "$PYTHON" - "$1" 2>/dev/null <<'EOF' || true
import glob, os, sys
try:
    import nvidia
except ImportError:
    sys.exit(0)
for base in list(getattr(nvidia, "__path__", [])):
    for p in sorted(glob.glob(os.path.join(base, "*", "lib", sys.argv[1]))):
        print(p)
        sys.exit(0)
EOF
}

# Makes each NVIDIA library the plugin needs reachable under a name it
# tries: found already; else a CUDA 12 build from Python's nvidia packages;
# else the CUDA 13 library linked as the unversioned name. Sets SHIM_PATH.
shim_libraries() {
  local shim=$1 lib found target dir
  SHIM_PATH=""
  mkdir -p "$shim"
  for lib in libcublas libcublasLt libnvrtc libcudnn; do
    local want=$lib.so.12
    [ "$lib" = libcudnn ] && want=$lib.so.9
    if loadable "$want" || { [ "$lib" != libcudnn ] && loadable "$lib.so"; }; then
      echo "libraries: $want: found by the loader"
      continue
    fi
    found=""
    target=$(python_path "$want")
    if [ -n "$target" ]; then
      ln -sf "$target" "$shim/$want"
      found="$shim/$want -> $target (Python package)"
    elif [ "$lib" != libcudnn ]; then
      target=$(cached_path "$lib.so.13")
      [ -n "$target" ] || target=$(python_path "$lib.so.13")
      if [ -n "$target" ]; then
        ln -sf "$target" "$shim/$lib.so"
        found="$shim/$lib.so -> $target (only CUDA 13's $(basename "$target") is installed; the plugin binds CUDA 12 names and tries unversioned ones)"
      fi
    fi
    if [ -z "$found" ]; then
      echo "libraries: $want: not found (sunrise doctor will say so)"
      continue
    fi
    echo "libraries: linked $found"
    # Companions (libnvrtc-builtins, libcublasLt for libcublas) sit beside
    # the target; the loader cache knows that directory unless it is a
    # Python package's.
    dir=$(dirname "$target")
    if ! ldconfig -p 2>/dev/null | grep -q " => $dir/"; then
      case ":$SHIM_PATH:" in *":$dir:"*) ;; *) SHIM_PATH="$SHIM_PATH:$dir" ;; esac
    fi
  done
  SHIM_PATH="$shim$SHIM_PATH"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

declare -a STEPS=()
FAILED=0
record() { # name status detail
  STEPS+=("$(printf '%-26s %-6s %s' "$1" "$2" "$3")")
  [ "$2" = ok ] || FAILED=1
}

# Runs a step with a time limit (cut to what is left of the deadline), its
# output to LOG/<name>.log; returns its status (124: out of time).
step() { # name seconds command...
  local name=$1 limit=$2 rc=0 left
  shift 2
  left=$(awk -v s="$START" -v n="$(now)" -v d="${GPU_CHECK_DEADLINE:-540}" 'BEGIN { printf "%d", d - (n - s) - 15 }')
  if [ "$left" -lt 10 ]; then
    echo "($name: not run: the ${GPU_CHECK_DEADLINE:-540} s deadline is spent)" > "$LOG/$name.log"
    return 124
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  timeout --kill-after=10 "$limit" "$@" > "$LOG/$name.log" 2>&1 || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "($name: stopped after ${limit} s)" >> "$LOG/$name.log"
  fi
  return "$rc"
}

run_checks() {
  local bundle start orig_ld work shim
  start=$(now)
  START=$start
  bundle=$(find_bundle)
  for f in sunrise libsunrise_backend_cuda.so cuda_conformance torch_cuda_bench.py; do
    if [ ! -e "$bundle/$f" ]; then
      echo "gpu-check: no bundle at $bundle ($f is missing)."
      echo "Build it where Rust is installed: scripts/gpu-check.sh bundle; then carry gpu-bundle/ to the GPU machine."
      exit 3
    fi
  done
  work=$(mktemp -d "${TMPDIR:-/tmp}/sunrise-gpu-check.XXXXXX")
  LOG=${OUT:+$OUT/gpu-check}
  LOG=${LOG:-$work/logs}
  mkdir -p "$LOG"
  echo "== gpu-check run: bundle $bundle"
  sed -n '1,3p' "$bundle/MANIFEST" 2>/dev/null || true
  echo "logs: $LOG"

  echo "== libraries"
  orig_ld=${LD_LIBRARY_PATH:-}
  shim_libraries "$work/lib"
  export LD_LIBRARY_PATH="$SHIM_PATH${orig_ld:+:$orig_ld}"
  echo "LD_LIBRARY_PATH for our commands: $LD_LIBRARY_PATH"
  # PyTorch keeps the environment it came with.
  cat > "$work/python" <<EOF
#!/bin/sh
LD_LIBRARY_PATH='$orig_ld'
[ -n "\$LD_LIBRARY_PATH" ] || unset LD_LIBRARY_PATH
exec $(command -v "$PYTHON" || echo "$PYTHON") "\$@"
EOF
  chmod +x "$work/python"

  echo "== GPU"
  if ! command -v nvidia-smi >/dev/null; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi not found)."
    echo "Run this on the GPU machine: bash scripts/gpu-check.sh run (with gpu-bundle/ beside scripts/)."
    exit 3
  fi
  if ! nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader; then
    echo "gpu-check: nvidia-smi failed: no usable NVIDIA GPU here"
    exit 3
  fi

  export SUNRISE_BACKEND_PATH="$bundle"
  unset SUNRISE_CUDA_TF32 SUNRISE_DEVICE
  local rc

  echo "== sunrise doctor (SUNRISE_DEVICE=cuda)"
  rc=0
  SUNRISE_DEVICE=cuda step doctor 60 "$bundle/sunrise" doctor || rc=$?
  cat "$LOG/doctor.log"
  if [ "$rc" = 0 ]; then record doctor ok "cuda:0 usable"; else record doctor FAIL "exit $rc: cuda unusable"; fi

  echo "== sunrise conformance --device cuda: every listed (op, dtype) against the CPU, buffers, error paths, training (full log: $LOG/conformance.log)"
  rc=0
  SUNRISE_CUDA_CACHE_DIR="$work/cache-conformance" step conformance 240 \
    "$bundle/sunrise" --device cuda conformance || rc=$?
  grep -vE ' ok$' "$LOG/conformance.log" | head -n 60 || true
  if [ "$rc" = 0 ]; then
    record conformance ok "$(tail -n 1 "$LOG/conformance.log")"
  else
    record conformance FAIL "exit $rc: $(tail -n 1 "$LOG/conformance.log"); see $LOG/conformance.log"
  fi

  echo "== the digits CNN trained on the GPU reaches the CPU's accuracy band (cuda_conformance; full log: $LOG/training-band.log)"
  rc=0
  SUNRISE_CUDA_CACHE_DIR="$work/cache-conformance" step training-band 180 \
    "$bundle/cuda_conformance" --test-threads=1 --nocapture training || rc=$?
  grep -E '^train on|^ops that fell|skipped:|panicked|test result' "$LOG/training-band.log" | head -n 20 || true
  if grep -q 'skipped: ' "$LOG/training-band.log"; then
    record training-band FAIL "skipped: the plugin is unusable"
  elif [ "$rc" = 0 ]; then
    record training-band ok "$(grep -m1 '^train on cuda' "$LOG/training-band.log" || echo passed)"
  else
    record training-band FAIL "exit $rc; see $LOG/training-band.log"
  fi

  echo "== start-up: SUNRISE_DEVICE=cuda sunrise train --epochs 1, cold (empty kernel cache) then warm"
  local t cold warm entries
  rm -rf "$work/cache-train"
  for phase in cold warm; do
    rc=0
    t=$(now)
    SUNRISE_DEVICE=cuda SUNRISE_CUDA_CACHE_DIR="$work/cache-train" \
      step "train-$phase" 120 "$bundle/sunrise" train --epochs 1 --quiet || rc=$?
    t=$(elapsed "$t")
    entries=$(find "$work/cache-train" -type f 2>/dev/null | wc -l || true)
    echo "$phase: ${t} s wall, exit $rc, $entries kernel cache file(s); $(grep -m1 '^done:' "$LOG/train-$phase.log" || tail -n 2 "$LOG/train-$phase.log")"
    if [ "$rc" = 0 ]; then record "start-up $phase" ok "${t} s"; else record "start-up $phase" FAIL "exit $rc"; fi
    [ "$phase" = cold ] && cold=$t || warm=$t
  done
  echo "cold ${cold} s, warm ${warm} s"

  echo "== the main job: sunrise train (default 12 epochs) on cuda and on the cpu"
  for dev in cuda cpu; do
    rc=0
    t=$(now)
    SUNRISE_DEVICE=$dev SUNRISE_CUDA_CACHE_DIR="$work/cache-train" \
      step "train-$dev" 180 "$bundle/sunrise" train --quiet || rc=$?
    t=$(elapsed "$t")
    grep -E '^(device|done:|ops that fell)' "$LOG/train-$dev.log" || tail -n 3 "$LOG/train-$dev.log"
    if [ "$rc" = 0 ]; then
      record "train $dev" ok "$(grep -o 'held-out accuracy [0-9.]*%' "$LOG/train-$dev.log" | head -n 1), ${t} s"
    else
      record "train $dev" FAIL "exit $rc"
    fi
  done

  echo "== sunrise bench cuda beside PyTorch (strict f32; ${GPU_CHECK_SECONDS:-1} s per measurement)"
  rc=0
  step bench 300 "$bundle/sunrise" bench cuda --json --seconds "${GPU_CHECK_SECONDS:-1}" \
    --scripts "$bundle" --python "$work/python" || rc=$?
  grep '^{' "$LOG/bench.log" > "$work/bench.jsonl" || true
  cp "$work/bench.jsonl" "$LOG/bench.jsonl" 2>/dev/null || true
  grep -v '^{' "$LOG/bench.log" | tail -n 5 || true
  cat "$work/bench.jsonl"
  if [ "$rc" = 0 ] && [ -s "$work/bench.jsonl" ]; then
    if grep -q '"peer_error"' "$work/bench.jsonl"; then
      record bench FAIL "ours measured; the PyTorch peer failed (peer_error)"
    else
      record bench ok "$(wc -l < "$work/bench.jsonl") rows"
    fi
  else
    record bench FAIL "exit $rc; see $LOG/bench.log"
  fi

  echo
  echo "== summary ($(elapsed "$start") s)"
  printf '%s\n' "${STEPS[@]}"
  echo
  table "$work/bench.jsonl"
  return "$FAILED"
}

# The last thing printed: ours beside PyTorch, from the bench's JSON lines.
table() {
  "$work/python" - "$1" <<'EOF' || echo "(no table: the bench printed nothing usable)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    raise SystemExit(1)
r0 = rows[0]
print(f"sunrise bench cuda on {r0.get('device')} ({'TF32' if r0.get('tf32') else 'strict f32'}), "
      f"peer: {next((r['peer_detail'] for r in rows if r.get('peer_detail')), 'unavailable')}")
print(f"{'case':<31} {'pass':<15} {'unit':<8} {'ours':>9} {'PyTorch':>9} {'ratio':>7} {'target':>7}")
for r in rows:
    unit, key = ("GB/s", "gbps") if "bytes" in r else ("TFLOP/s", "tflops")
    fig = lambda v: "-" if v is None else f"{v:.2f}"
    ratio, target = r.get("ratio"), r.get("target", 0)
    mark = "" if ratio is None else ("  ok" if ratio >= target else "  below")
    err = r.get("error") or ("" if ratio is not None else r.get("peer_error", ""))
    print(f"{r['case']:<31} {r.get('pass') or '-':<15} {unit:<8} {fig(r.get('ours_' + key)):>9} "
          f"{fig(r.get('peer_' + key)):>9} {'-' if ratio is None else f'{ratio:.2f}x':>7} "
          f"{target:>6.2f}x{mark}{('  ' + err[:60]) if err else ''}")
EOF
}

case "${1:-}" in
  bundle) bundle ;;
  run) run_checks ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
