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


# Batch norm and PReLU for compiled CPU training.
#
# In a compiled CPU training step, inductor turns each per-channel reduction of a channels-last
# activation (batch-norm statistics and their gradients, PReLU's slope gradient) into one loop
# over every row of the batch for each group of 8 channels: a strided walk through the whole
# tensor, eight times over at 64 channels. On the 2-core AVX2 host these kernels were ~45 % of
# the MobileFaceNet step (reports/runtime/README.md). Summing over each image's H x W rows
# first (a block that stays in cache) and then over the batch gives inductor two loops it
# walks well: BN + PReLU forward and backward at the 56x48 shapes take 0.64-0.83 of the time,
# and the whole step runs 1.15x faster (`benchmarks/fp32_train_levers.py`). Eager steps,
# inference, other devices, bf16 autocast and other dtypes keep ATen's kernels.


def _channel_sum(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of an N x C x H x W tensor: over each image first, then the batch."""
    return t.sum((2, 3)).sum(0)


def _per_channel(v: torch.Tensor) -> torch.Tensor:
    return v[:, None, None]


def _two_level_path(x: torch.Tensor) -> bool:
    # fp32 steps only, where it was measured: bf16 autocast runs on CPUs with native bf16, and
    # those steps keep the kernels their figures were measured with.
    return (x.dim() == 4 and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and torch.compiler.is_compiling())


class _BatchNormStatistics(torch.autograd.Function):
    """Training-mode batch norm from two-level channel sums: returns the output and the batch
    mean and (biased) variance, which the caller folds into its running statistics."""

    @staticmethod
    def forward(ctx, x, weight, bias, shift, eps: float):
        count = x.shape[0] * x.shape[2] * x.shape[3]
        # Sums of x - shift (the running mean): the variance E[x^2] - E[x]^2 then keeps its
        # precision when a channel's mean is large against its spread.
        centred = x - _per_channel(shift)
        mean_centred = _channel_sum(centred) / count
        var = (_channel_sum(centred * centred) / count - mean_centred * mean_centred).clamp_min(0)
        mean = mean_centred + shift
        rstd = torch.rsqrt(var + eps)
        scale = rstd * weight
        y = x * _per_channel(scale) + _per_channel(bias - mean * scale)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar):
        x, weight, mean, rstd = ctx.saved_tensors
        count = x.shape[0] * x.shape[2] * x.shape[3]
        sum_dy = _channel_sum(dy)
        # sum(dy * xhat) with xhat = (x - mean) * rstd, from sum(dy * x): one product per element
        sum_dy_xhat = rstd * (_channel_sum(dy * x) - mean * sum_dy)
        gain = weight * rstd
        # dx = gain * (dy - mean(dy) - xhat * mean(dy * xhat)), as dy * gain - x * c1 + c0
        c1 = gain * rstd * sum_dy_xhat / count
        c0 = c1 * mean - gain * sum_dy / count
        dx = dy * _per_channel(gain) - x * _per_channel(c1) + _per_channel(c0)
        return dx, sum_dy_xhat, sum_dy, None, None


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state-dict keys) whose compiled CPU
    training step uses two-level channel sums; see the note above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats and self.momentum is not None
                and self.affine and _two_level_path(x)):
            return super().forward(x)
        y, mean, var = _BatchNormStatistics.apply(x, self.weight, self.bias, self.running_mean.detach(), self.eps)
        count = x.numel() // x.shape[1]
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            # The running variance is the unbiased one, as ATen keeps it.
            self.running_var.lerp_(var * (count / max(count - 1, 1)), self.momentum)
            self.num_batches_tracked.add_(1)
        return y


class _ChannelPReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x, slope)
        return torch.where(x > 0, x, x * _per_channel(slope))

    @staticmethod
    def backward(ctx, dy):
        x, slope = ctx.saved_tensors
        positive = x > 0
        dx = torch.where(positive, dy, dy * _per_channel(slope))
        return dx, _channel_sum(torch.where(positive, 0.0, dy * x))


class PReLU(nn.PReLU):
    """``nn.PReLU`` whose slope gradient, in a compiled CPU training step, is a two-level
    channel sum; see the note above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _two_level_path(x) and self.weight.numel() == x.shape[1]:
            return _ChannelPReLU.apply(x, self.weight)
        return super().forward(x)
