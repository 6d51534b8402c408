#!/usr/bin/env python3
"""The conv2d peer of `sunrise bench conv`: ONNX Runtime's CPU provider.

Builds a one-node ONNX model (Conv, f32, NCHW, no bias, weights as an
initializer), runs it with intra_op_num_threads = --threads and sequential
execution, and prints one JSON line:

  {"peer": "onnxruntime", "version": "...", "provider": "CPUExecutionProvider",
   "threads": T, "runs": R, "seconds": median, "gflops": 2*N*K*OH*OW*C*KH*KW/median/1e9}

On failure it prints {"error": "..."} and exits 2 (onnxruntime, onnx or
numpy missing: `scripts/setup-bench-peers.sh` installs them) or 1.

Example: onnxruntime_conv_bench.py --n 8 --c 64 --h 56 --w 56 --k 64 \
    --kernel 3 --stride 1 --pad 1 --threads 1 --seconds 0.3
"""

import argparse
import json
import statistics
import sys
import time


def fail(message, code):
    print(json.dumps({"error": message}))
    sys.exit(code)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("n", "c", "h", "w", "k", "kernel"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--pad", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=0.3)
    a = p.parse_args()
    if min(a.n, a.c, a.h, a.w, a.k, a.kernel, a.stride, a.threads) < 1 or a.pad < 0:
        fail("sizes, stride and threads must be positive, padding non-negative", 1)
    if min(out_extent(a, a.h), out_extent(a, a.w)) < 1:
        fail("the window does not fit the padded input", 1)
    return a


def out_extent(a, n):
    return (n + 2 * a.pad - a.kernel) // a.stride + 1


def conv_model(a, onnx, helper, numpy_helper, np):
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (a.k, a.c, a.kernel, a.kernel)).astype(np.float32)
    node = helper.make_node(
        "Conv", ["X", "W"], ["Y"],
        kernel_shape=[a.kernel, a.kernel],
        strides=[a.stride, a.stride],
        pads=[a.pad] * 4,
    )
    x_info = helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [a.n, a.c, a.h, a.w])
    y_shape = [a.n, a.k, out_extent(a, a.h), out_extent(a, a.w)]
    y_info = helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, y_shape)
    graph = helper.make_graph([node], "conv", [x_info], [y_info],
                              initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # readable by every onnxruntime that has opset 13
    onnx.checker.check_model(model)
    return model.SerializeToString()


def measure(a, np, onnx, helper, numpy_helper, ort):
    """Median seconds of one run, the number of runs, the provider used."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(conv_model(a, onnx, helper, numpy_helper, np), opts,
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-1, 1, (a.n, a.c, a.h, a.w)).astype(np.float32)
    feed = {"X": x}

    sess.run(None, feed)  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < a.seconds and len(times) < 1000):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(times), sess.get_providers()[0]


def main():
    a = parse_args()
    try:
        import numpy as np
        import onnx
        from onnx import helper, numpy_helper
        import onnxruntime as ort
    except ImportError as e:
        fail(f"{e.name or e} is not installed (run scripts/setup-bench-peers.sh)", 2)

    try:
        median, runs, provider = measure(a, np, onnx, helper, numpy_helper, ort)
    except Exception as e:  # noqa: BLE001 - any ONNX/ORT failure is reported as JSON
        fail(f"{type(e).__name__}: {e}", 1)

    flops = 2.0 * a.n * a.k * out_extent(a, a.h) * out_extent(a, a.w) * a.c * a.kernel * a.kernel
    print(json.dumps({
        "peer": "onnxruntime",
        "version": ort.__version__,
        "provider": provider,
        "threads": a.threads,
        "runs": runs,
        "seconds": median,
        "gflops": flops / median / 1e9,
    }))


if __name__ == "__main__":
    main()
