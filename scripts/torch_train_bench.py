#!/usr/bin/env python3
"""PyTorch (CPU) peer of `sunrise bench train`: the same training steps
(forward, cross-entropy, backward, AdamW) on the same models, shapes and
recipe, and the same tiny-op dispatch rows. One JSON line per case:
{"case", "seconds", "peak_mb", "growth_mb", "detail"}; or one line
{"error": ...} when torch cannot be imported.

Fair threading: the caller sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
OMP_WAIT_POLICY=PASSIVE in the environment before this starts (Debian's
torch runs GEMM on OpenBLAS's own threads and the rest on OpenMP, whose
idle threads otherwise spin on the cores); this script also calls
torch.set_num_threads and says in "detail" what was in force.

Memory: the peak resident set while the case runs (VmHWM after writing 5
to /proc/self/clear_refs) and its growth over the resident set before it,
the same measure sunrise uses.
"""

import argparse
import json
import os
import statistics
import sys
import time


def emit(obj):
    print(json.dumps(obj), flush=True)


def rss_mb():
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        kb = lambda k: float(fields[k].strip().split()[0])
        return kb("VmRSS") / 1024.0, kb("VmHWM") / 1024.0
    except (OSError, KeyError, ValueError):
        return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def blas_in_use():
    """The BLAS library mapped into this process (after a matmul ran)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1].rsplit("/", 2)[-2] + "/" + line.split()[-1].rsplit("/", 1)[-1]
                    for line in f if "blas" in line.lower() and "/" in line}
        return ", ".join(sorted(libs)) or "no BLAS mapped"
    except OSError:
        return "unknown"


def median_seconds(fn, budget, minimum=5, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < minimum or (time.perf_counter() - start < budget and len(times) < 1000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def build(torch, case):
    nn = torch.nn
    classes = 10

    class Digits(nn.Module):
        # sunrise's ModelSpec CNN: two conv-BN-ReLU-maxpool stages (16, 32
        # channels, 3x3, pad 1, no bias), then Linear(flat, 64), ReLU,
        # Linear(64, classes).
        def __init__(self, side):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(32 * (side // 4) * (side // 4), 64), nn.ReLU(),
                nn.Linear(64, classes),
            )

        def forward(self, x):
            return self.body(x)

    class Cnn32(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for cin, cout in [(3, 32), (32, 64), (64, 128)]:
                layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                           nn.BatchNorm2d(cout), nn.ReLU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(128, classes)

        def forward(self, x):
            return self.head(self.body(x).mean(dim=(2, 3)))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.TransformerEncoderLayer(256, 4, dim_feedforward=1024, dropout=0.1,
                                                    batch_first=True)
            self.head = nn.Linear(256, classes)

        def forward(self, x):
            y = self.block(x)
            return self.head(y.reshape(-1, 256))

    if case == "digits-cnn":
        return Digits(8), (32, 1, 8, 8), 32
    if case == "cnn-1x28x28":
        return Digits(28), (32, 1, 28, 28), 32
    if case == "mlp-784-512-512-10":
        m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, classes))
        return m, (64, 784), 64
    if case == "transformer-d256":
        return Transformer(), (8, 64, 256), 8 * 64
    if case in ("cnn-3x32x32", "cnn-3x32x32-nhwc"):
        return Cnn32(), (32, 3, 32, 32), 32
    raise ValueError(case)


STEP_CASES = ["digits-cnn", "cnn-1x28x28", "mlp-784-512-512-10", "transformer-d256",
              "cnn-3x32x32", "cnn-3x32x32-nhwc"]
DISPATCH_CASES = ["add-f32[16]", "relu-f32[16]", "matmul-32x64x64", "autograd-chain-5-ops"]


def step_case(torch, case, budget, detail):
    before = rss_mb() if reset_peak() else None
    torch.manual_seed(11)
    model, shape, labels = build(torch, case)
    x = torch.rand(shape) * 2 - 1
    if case.endswith("-nhwc"):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.tensor([(i * 7 + 3) % 10 for i in range(labels)], dtype=torch.long)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    seconds = median_seconds(step, budget)
    after = rss_mb()
    row = {"case": case, "seconds": seconds, "detail": detail}
    if before and after:
        row["peak_mb"] = after[1]
        row["growth_mb"] = max(0.0, after[1] - before[0])
    return row


def dispatch_case(torch, case, budget, detail):
    if case == "add-f32[16]":
        a, b = torch.rand(16), torch.rand(16)
        fn = lambda: torch.add(a, b)
    elif case == "relu-f32[16]":
        a = torch.rand(16)
        fn = lambda: torch.relu(a)
    elif case == "matmul-32x64x64":
        a, b = torch.rand(32, 64), torch.rand(64, 64)
        fn = lambda: torch.matmul(a, b)
    else:
        x = (torch.rand(16) * 2 - 1).requires_grad_(True)

        def fn():
            y = (torch.relu(x * x + x) * 2.0).sum()
            y.backward()
    if case != "autograd-chain-5-ops":
        with torch.no_grad():
            seconds = median_seconds(fn, budget, minimum=100, warmup=50)
    else:
        seconds = median_seconds(fn, budget, minimum=100, warmup=50)
    return {"case": case, "seconds": seconds, "detail": detail}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=0.3)
    p.add_argument("--filter", default=None)
    a = p.parse_args()
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        emit({"error": f"cannot import torch ({e}); apt-get install python3-torch, "
                       "then run with /usr/bin/python3 (scripts/setup-bench-peers.sh)"})
        return 0
    torch.set_num_threads(max(1, a.threads))
    env = ", ".join(f"{k}={os.environ.get(k, 'unset')}"
                    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY"))
    torch.rand(64, 64) @ torch.rand(64, 64)
    detail = (f"torch {torch.__version__} (CPU), set_num_threads({torch.get_num_threads()}), "
              f"{env}, BLAS {blas_in_use()}")
    budget = max(a.seconds, 0.0)
    for case in STEP_CASES:
        if a.filter and a.filter not in case:
            continue
        emit(step_case(torch, case, budget, detail))
    for case in DISPATCH_CASES:
        if a.filter and a.filter not in case:
            continue
        emit(dispatch_case(torch, case, budget, detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
