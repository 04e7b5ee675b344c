#!/usr/bin/env python
"""Forward + backward time of MobileFaceNet's depthwise convolutions at 56x48 input, batch 256,
in fp32 / bf16 and NCHW / channels-last. Why `DepthwiseConv2d` runs strided ones in fp32
channels-last on CPU: their bf16 backward takes a slow ATen path.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import write_result

# (channels, height, width, stride) of the depthwise layers of MobileFaceNet at 56x48.
SHAPES = ((64, 28, 24, 1), (128, 28, 24, 2), (128, 14, 12, 1), (256, 14, 12, 2), (256, 7, 6, 1), (512, 7, 6, 2))


def time_conv(channels: int, h: int, w: int, stride: int, dtype, channels_last: bool, batch: int, repeats: int):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, h, w, generator=g).to(dtype).contiguous(memory_format=layout).requires_grad_()
    weight = torch.randn(channels, 1, 3, 3, generator=g).to(dtype).requires_grad_()

    def forward():
        return F.conv2d(x, weight, stride=stride, padding=1, groups=channels)

    y = forward()
    grad = torch.randn_like(y)
    torch.autograd.grad(y, (x, weight), grad, retain_graph=True)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        forward()
    fwd = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        torch.autograd.grad(y, (x, weight), grad, retain_graph=True)
    bwd = (time.perf_counter() - start) / repeats
    return round(fwd * 1000, 2), round(bwd * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for c, h, w, s in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            for cl in (False, True):
                fwd, bwd = time_conv(c, h, w, s, dtype, cl, args.batch, args.repeats)
                rows.append(dict(channels=c, height=h, width=w, stride=s, dtype=str(dtype).split(".")[1],
                                 channels_last=cl, forward_ms=fwd, backward_ms=bwd))
    strided = [r for r in rows if r["stride"] == 2]
    bf16 = sum(r["backward_ms"] for r in strided if r["dtype"] == "bfloat16" and not r["channels_last"])
    fp32_cl = sum(r["backward_ms"] for r in strided if r["dtype"] == "float32" and r["channels_last"])
    write_result(args.json, {"strided_backward_ms_bf16_nchw": round(bf16, 1),
                             "strided_backward_ms_fp32_channels_last": round(fp32_cl, 1),
                             "slowdown": round(bf16 / fp32_cl, 2), "threads": torch.get_num_threads(),
                             "batch": args.batch, "layers": rows})


if __name__ == "__main__":
    main()
