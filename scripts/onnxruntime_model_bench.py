#!/usr/bin/env python3
"""ONNX Runtime's CPU provider on a whole model, the peer of `sunrise bench
onnx`: median latency of session.run over --seconds (after a warm-up) with
--threads intra-op threads, sequential execution, all graph optimisations
on; peak resident memory of the process. Prints one JSON object.

Usage: python3 scripts/onnxruntime_model_bench.py --model M.onnx --batch B
         --threads N --seconds S
"""
import argparse
import json
import resource
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(json.dumps({"error": f"{e}; pip install onnxruntime numpy"}))
        return 0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else a.batch for d in i.shape]
        feeds[i.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(3):
        sess.run(None, feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < a.seconds:
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
    times.sort()
    # VmHWM of this process image (ru_maxrss would carry the high-water
    # mark of the process that forked us across exec).
    peak = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024.0
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "seconds": times[len(times) // 2],
        "detail": f"onnxruntime {ort.__version__}, CPUExecutionProvider, {a.threads} thread(s)",
        "peak_mb": peak,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
