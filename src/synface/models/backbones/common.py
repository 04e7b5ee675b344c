"""Shared pieces of the backbones."""

from __future__ import annotations

import math

import torch
from torch import nn


def downsampled(size: tuple[int, int], times: int) -> tuple[int, int]:
    """Feature-map size after ``times`` stride-2 convolutions with 'same' padding (ceil(n/2))."""
    h, w = size
    for _ in range(times):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution that stays fast on CPU under bf16 autocast.

    ATen's bf16 backward for *strided* depthwise convolutions on CPU takes a slow path: at the
    MobileFaceNet 56x48 shapes it is 5-25x slower than fp32 channels-last
    (`benchmarks/depthwise_conv.py`), and it was two thirds of the whole training step. Those
    layers therefore run in fp32, channels-last; other devices and stride 1 are untouched.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and self.stride != (1, 1) and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float().contiguous(memory_format=torch.channels_last))
        return super().forward(x)
