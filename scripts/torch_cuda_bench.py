#!/usr/bin/env python3
"""PyTorch on the same GPU: the peer of `sunrise bench cuda`.

Runs the cases of `sunrise bench cuda` (f32 GEMM 1024/4096/8192; conv2d
forward, backward-data and backward-filter on three ResNet layers at batch
32; a 2^28-element multiply) and prints one JSON line per case:

    {"suite": "cuda", "case": ..., "pass": ..., "op": ..., "peer": "pytorch",
     "peer_detail": "torch X, CUDA Y, cuDNN Z, <GPU>", "tf32": false,
     "flops" | "bytes": ..., "peer_tflops" | "peer_gbps": ...,
     "peer_seconds": ...}

or, for a case that fails, the same keys with "error" instead of figures.

Strict f32 by default (torch.backends.cuda.matmul.allow_tf32 = False,
torch.backends.cudnn.allow_tf32 = False); `--tf32` allows TF32 on both, to
compare with `SUNRISE_CUDA_TF32=1`. cudnn.benchmark is on: PyTorch picks
its fastest convolution algorithm per shape, as the plugin does.

Timing, as `sunrise bench cuda` does it: one warm-up call, one call timed
alone to size the batches, then batches of back-to-back calls of about
20 ms each between two CUDA events; the median batch time over --seconds
(at least 5 batches) divided by its calls. Outputs are allocated by each
call, as ours are.

`sunrise bench cuda` passes its case list as --spec (JSON); without it the
default list below is used (the same cases; a unit test of the CLI checks
that every case name appears in this file).

Usage: python3 scripts/torch_cuda_bench.py [--seconds S] [--tf32]
                                           [--spec JSON] [--filter TEXT]
Exit status: 0 when every case ran, 1 when one failed, 2 when torch or a
CUDA device is missing (the reason on stderr).
"""

import argparse
import json
import math
import statistics
import sys
import time

GEMMS = [1024, 4096, 8192]

# (n, c, h, w, k, kernel, stride, pad): names as in `sunrise bench conv`:
# N32-C64-56x56-K64-3x3-s1-p1, N32-C3-224x224-K64-7x7-s2-p3,
# N32-C256-14x14-K256-3x3-s1-p1.
CONVS = [
    (32, 64, 56, 56, 64, 3, 1, 1),
    (32, 3, 224, 224, 64, 7, 2, 3),
    (32, 256, 14, 14, 256, 3, 1, 1),
]

PASSES = ["forward", "backward_data", "backward_filter"]

# mul-268435456: c = a * b on 2^28 f32 elements.
MUL_NUMEL = 1 << 28


def conv_name(n, c, h, w, k, kernel, stride, pad):
    return f"N{n}-C{c}-{h}x{w}-K{k}-{kernel}x{kernel}-s{stride}-p{pad}"


def default_spec():
    spec = [{"case": f"{s}x{s}x{s}", "op": "matmul", "m": s, "k": s, "n": s} for s in GEMMS]
    for (n, c, h, w, k, kernel, stride, pad) in CONVS:
        for p in PASSES:
            spec.append({
                "case": conv_name(n, c, h, w, k, kernel, stride, pad), "op": "conv2d", "pass": p,
                "n": n, "c": c, "h": h, "w": w, "k": k, "kernel": kernel, "stride": stride, "pad": pad,
            })
    spec.append({"case": f"mul-{MUL_NUMEL}", "op": "mul", "numel": MUL_NUMEL})
    return spec


def time_gpu(torch, fn, budget):
    """Median seconds per call (see the module docstring)."""
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    one = max(time.perf_counter() - t, 1e-7)
    reps = min(max(math.ceil(0.02 / one), 1), 1000)
    samples = []
    start = time.perf_counter()
    while len(samples) < 5 or (time.perf_counter() - start < budget and len(samples) < 1000):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(reps):
            fn()
        e1.record()
        e1.synchronize()
        samples.append(e0.elapsed_time(e1) / 1e3 / reps)
    return statistics.median(samples)


def work(case):
    """(key, amount): flops, or bytes read + written."""
    op = case["op"]
    if op == "matmul":
        return "flops", 2.0 * case["m"] * case["k"] * case["n"]
    if op == "mul":
        return "bytes", 12.0 * case["numel"]
    oh = (case["h"] + 2 * case["pad"] - case["kernel"]) // case["stride"] + 1
    ow = (case["w"] + 2 * case["pad"] - case["kernel"]) // case["stride"] + 1
    return "flops", 2.0 * case["n"] * case["k"] * oh * ow * case["c"] * case["kernel"] ** 2


def make_call(torch, case, dev):
    """The function to time for one case, its inputs made on the device."""
    gen = torch.Generator(device=dev)
    gen.manual_seed(7)

    def rand(*shape):
        return torch.rand(*shape, generator=gen, device=dev, dtype=torch.float32) * 2 - 1

    op = case["op"]
    if op == "matmul":
        a, b = rand(case["m"], case["k"]), rand(case["k"], case["n"])
        return lambda: torch.matmul(a, b)
    if op == "mul":
        a = torch.full((case["numel"],), 1.5, device=dev, dtype=torch.float32)
        b = torch.full((case["numel"],), 0.75, device=dev, dtype=torch.float32)
        return lambda: torch.mul(a, b)
    n, c, h, w, k, r = case["n"], case["c"], case["h"], case["w"], case["k"], case["kernel"]
    stride, pad = case["stride"], case["pad"]
    x, wt = rand(n, c, h, w), rand(k, c, r, r)
    f = torch.nn.functional
    y = f.conv2d(x, wt, None, stride, pad)
    dy = rand(*y.shape)
    p = case.get("pass", "forward")
    if p == "forward":
        return lambda: f.conv2d(x, wt, None, stride, pad)
    if p == "backward_data":
        return lambda: torch.nn.grad.conv2d_input(x.shape, wt, dy, stride, pad)
    if p == "backward_filter":
        return lambda: torch.nn.grad.conv2d_weight(x, wt.shape, dy, stride, pad)
    raise ValueError(f"unknown pass {p!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 (default: strict f32)")
    ap.add_argument("--spec", help="JSON list of cases (from `sunrise bench cuda`)")
    ap.add_argument("--filter", help="only cases whose name, op or pass contains this")
    args = ap.parse_args()

    try:
        import torch
    except ImportError as e:
        print(f"torch is not installed: {e}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    if not args.tf32:
        torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda:0")
    detail = "torch {}, CUDA {}, cuDNN {}, {}".format(
        torch.__version__, torch.version.cuda, torch.backends.cudnn.version(),
        torch.cuda.get_device_name(dev))

    spec = json.loads(args.spec) if args.spec else default_spec()
    if args.filter:
        spec = [c for c in spec if any(args.filter in str(c.get(k, "")) for k in ("case", "op", "pass"))]
    failed = False
    for case in spec:
        key, amount = work(case)
        row = {"suite": "cuda", "case": case["case"], "op": case["op"], "peer": "pytorch",
               "peer_detail": detail, "tf32": args.tf32, key: amount}
        if "pass" in case:
            row["pass"] = case["pass"]
        try:
            with torch.no_grad():
                fn = make_call(torch, case, dev)
                s = time_gpu(torch, fn, args.seconds)
            del fn
            unit, scale = ("peer_gbps", 1e9) if key == "bytes" else ("peer_tflops", 1e12)
            row[unit] = amount / s / scale
            row["peer_seconds"] = s
        except Exception as e:  # noqa: BLE001 -- reported per case, the others still run
            row["error"] = f"{type(e).__name__}: {e}"
            failed = True
        torch.cuda.empty_cache()
        print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
