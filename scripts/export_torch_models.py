#!/usr/bin/env python3
"""Exports models with Debian's PyTorch (python3-torch, python3-torchvision)
to ONNX for sunrise's ONNX checks and benchmark: torchvision's ResNet-18
and MobileNetV2 and a small transformer encoder (2 layers, d 128, 4 heads,
FFN 512, GELU, sequence 32), random weights (seeded), eval mode.

For each model NAME it writes, under OUT_DIR:
  NAME.onnx           the model (opset 14, input "x", output "y", the batch
                      dimension symbolic)
  NAME.input.npy      an input (seeded)
  NAME.torch.npy      PyTorch's own output on that input

Usage: /usr/bin/python3 scripts/export_torch_models.py OUT_DIR [--batch N]
"""
import argparse
import os
import sys

import numpy as np
import torch


class Encoder(torch.nn.Module):
    """Token embedding, 2 post-norm encoder layers, mean pool, linear head."""

    def __init__(self, vocab=1000, d=128, heads=4, ffn=512, layers=2, classes=10):
        super().__init__()
        self.embed = torch.nn.Linear(16, d)
        layer = torch.nn.TransformerEncoderLayer(
            d, heads, ffn, dropout=0.0, activation="gelu", batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def models(batch):
    import torchvision

    yield "resnet18", torchvision.models.resnet18(), (batch, 3, 224, 224)
    yield "mobilenet_v2", torchvision.models.mobilenet_v2(), (batch, 3, 224, 224)
    yield "encoder", Encoder(), (batch, 32, 16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.manual_seed(0)
    for name, model, shape in models(args.batch):
        model.eval()
        x = torch.from_numpy(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
        with torch.no_grad():
            y = model(x)
        path = os.path.join(args.out_dir, f"{name}.onnx")
        torch.onnx.export(
            model, (x,), path, input_names=["x"], output_names=["y"], opset_version=14,
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
        np.save(os.path.join(args.out_dir, f"{name}.input.npy"), x.numpy())
        np.save(os.path.join(args.out_dir, f"{name}.torch.npy"), y.numpy())
        print(f"{name}: {path} input {list(shape)} output {list(y.shape)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
