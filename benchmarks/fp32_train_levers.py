#!/usr/bin/env python
"""Levers for the fp32 training step on a CPU without native bf16 (issue 17), each timed
against the plain fp32 loop and our compiled step in one interleaved run.

``benchmarks/train_throughput.py`` measures what the Trainer does; this script measures what
else was tried to make its fp32 path faster, so the figures behind "it did not help" can be
re-run on the next host:
- ``compiled`` : our step as the Trainer runs it (channels-last, torch.compile max-autotune);
- ``compiled_fast_math``: the same with inductor's ``-ffast-math`` and FMA contraction flags;
- ``compiled_cpp_wrapper``: the same with inductor's C++ wrapper (no Python between kernels);
- ``compiled_no_tiling_heuristics`` / ``compiled_no_split_reductions``: two of inductor's loop
  choices for the batch-norm reductions that dominate the fp32 step, switched off;
- ``compiled_pointwise_as_matmul``: every 1x1 convolution computed as ``F.linear`` over the
  channels-last pixels (inductor then sees matrix products, forward and backward);
- ``compiled_aten_batch_norm``: the step before the backbones' own BatchNorm2d / PReLU
  (``synface.models.backbones.common``): ``nn.BatchNorm2d`` / ``nn.PReLU``, whose per-channel
  reductions inductor walks channel group by channel group over the whole batch;
- ``eager`` / ``eager_pointwise_as_matmul``: the same two models without compilation.

Rates are the median of ``--rounds`` interleaved rounds (this host's speed swings by 10 %
from minute to minute); ``ratio_vs_plain`` divides by the plain loop's median.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from synface.faces.templates import parse_size
from synface.models.backbones import get_backbone
from synface.runtime import CPU_COMPILE_MODE, tune_cpu_allocator
from synface.train.config import load_train_config

from common import write_result
from train_throughput import build as build_step, make_batch

# Inductor options per compiled lever (on top of the Trainer's CPU_COMPILE_MODE); None: eager.
LEVERS = {
    "compiled": {},
    "compiled_fast_math": {"cpp.enable_unsafe_math_opt_flag": True, "cpp.enable_floating_point_contract_flag": "fast"},
    "compiled_cpp_wrapper": {"cpp_wrapper": True},
    "compiled_no_tiling_heuristics": {"cpp.enable_tiling_heuristics": False},
    "compiled_no_split_reductions": {"split_reductions": False},
    "compiled_pointwise_as_matmul": {},
    "compiled_aten_batch_norm": {},
    "eager": None,
    "eager_pointwise_as_matmul": None,
}


class PointwiseAsMatmul(nn.Conv2d):
    """A 1x1 convolution computed as a matrix product over channels-last pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size != (1, 1) or self.stride != (1, 1) or self.groups != 1:
            return super().forward(x)
        y = F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias)
        return y.permute(0, 3, 1, 2)


def pointwise_as_matmul(child: nn.Module) -> nn.Module | None:
    if type(child) is nn.Conv2d and child.kernel_size == (1, 1):
        return PointwiseAsMatmul(child.in_channels, child.out_channels, 1, bias=child.bias is not None)
    return None


def aten_batch_norm(child: nn.Module) -> nn.Module | None:
    if isinstance(child, nn.BatchNorm2d) and type(child) is not nn.BatchNorm2d:
        return nn.BatchNorm2d(child.num_features, child.eps, child.momentum)
    if isinstance(child, nn.PReLU) and type(child) is not nn.PReLU:
        return nn.PReLU(child.num_parameters)
    return None


SWAPS = {"pointwise_as_matmul": pointwise_as_matmul, "aten_batch_norm": aten_batch_norm}


def backbone_with(swap, name: str, input_size, embedding: int) -> nn.Module:
    """The same network (same parameters and initialisation) with the modules ``swap`` replaces."""
    torch.manual_seed(0)
    model = get_backbone(name, input_size, embedding)
    for module in list(model.modules()):
        for child_name, child in module.named_children():
            swapped = swap(child)
            if swapped is not None:
                swapped.load_state_dict(child.state_dict())
                setattr(module, child_name, swapped)
    torch.manual_seed(0)
    check_same_network(get_backbone(name, input_size, embedding), model, input_size, swap.__name__)
    return model


def check_same_network(reference: nn.Module, swapped: nn.Module, input_size, what: str) -> None:
    """The lever must time the same function (same seed, same weights), not another network."""
    x = torch.randn(4, 3, *input_size, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        gap = (reference.eval()(x) - swapped.eval()(x)).abs().max().item()
    if gap > 1e-4:
        raise AssertionError(f"{what} changes the embeddings by {gap}")


def build_lever(lever: str, name: str, input_size, classes: int):
    """train_throughput's fp32 step with this lever's backbone and inductor options."""
    swap = next((swap for suffix, swap in SWAPS.items() if lever.endswith(suffix)), None)
    backbone = backbone_with(swap, name, input_size, 512) if swap else None
    options = LEVERS[lever]
    variant = "fp32_eager" if options is None else "fp32_compiled"
    # No extra options ("compiled"): compiled with the mode alone, exactly as the Trainer does.
    return build_step(name, input_size, classes, variant, CPU_COMPILE_MODE, backbone=backbone, compile_options=options or None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    args = parser.parse_args()
    tune_cpu_allocator()
    cpu = load_train_config("cpu")
    input_size, classes = parse_size(cpu.input_size), 1000
    images, labels = make_batch(cpu.batch_size, classes)
    steps = {"plain": build_step(cpu.backbone, input_size, classes, None, "")}
    steps.update({lever: build_lever(lever, cpu.backbone, input_size, classes) for lever in LEVERS})
    warmup = {}
    for variant, step in steps.items():
        start = time.perf_counter()
        step(images, labels)  # compilation
        warmup[variant] = round(time.perf_counter() - start, 1)
        print(f"{variant}: first step {warmup[variant]} s", flush=True)
    rates: dict[str, list[float]] = {variant: [] for variant in steps}
    for _ in range(args.rounds):
        for variant, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(images, labels)
            rates[variant].append(round(args.steps * len(images) / (time.perf_counter() - start), 1))
    median = {variant: statistics.median(r) for variant, r in rates.items()}
    write_result(args.json, {
        "backbone": cpu.backbone, "input_size": list(input_size), "batch": cpu.batch_size,
        "img_per_s": median, "img_per_s_rounds": rates, "first_step_s": warmup,
        "ratio_vs_plain": {v: round(r / median["plain"], 3) for v, r in median.items()},
        "gain_vs_compiled": {v: round(r / median["compiled"], 3) for v, r in median.items()},
    })


if __name__ == "__main__":
    main()
