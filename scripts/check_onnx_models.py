#!/usr/bin/env python3
"""Compares `sunrise run` on the models scripts/export_torch_models.py wrote
with PyTorch's own outputs (NAME.torch.npy) and, where the onnxruntime
package is installed, ONNX Runtime's CPU provider on the same file and
input. Prints one row per model: the largest relative difference
(max |a - b| / max |b|) to each reference; exit status 1 when one exceeds
1e-4.

Usage: python3 scripts/check_onnx_models.py DIR [--sunrise PATH]
"""
import argparse
import os
import subprocess
import sys

import numpy as np


def rel(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--sunrise", default="target/release/sunrise")
    args = ap.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    bad = False
    print(f"{'model':<14} {'vs PyTorch':>12} {'vs ONNX Runtime':>16}")
    for name in ("resnet18", "mobilenet_v2", "encoder"):
        model = os.path.join(args.dir, f"{name}.onnx")
        if not os.path.exists(model):
            continue
        x = os.path.join(args.dir, f"{name}.input.npy")
        out = os.path.join(args.dir, f"out_{name}")
        subprocess.run(
            [args.sunrise, "run", model, "--input", f"x={x}", "--output-dir", out],
            check=True, stdout=subprocess.DEVNULL, env={**os.environ, "SUNRISE_LOG": "warn"},
        )
        ours = np.load(os.path.join(out, "y.npy"))
        torch_y = np.load(os.path.join(args.dir, f"{name}.torch.npy"))
        r_torch = rel(ours, torch_y)
        r_ort = None
        if ort is not None:
            sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            r_ort = rel(ours, sess.run(None, {"x": np.load(x)})[0])
        bad |= r_torch > 1e-4 or (r_ort is not None and r_ort > 1e-4)
        ort_s = "unavailable" if r_ort is None else f"{r_ort:.2e}"
        print(f"{name:<14} {r_torch:>12.2e} {ort_s:>16}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
