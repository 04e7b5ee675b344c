#!/usr/bin/env python
"""Training-step throughput on this machine: every precision x compile variant of our step,
what ``auto`` picks, and a plain PyTorch loop (issues 5 and 17).

"ours" is the Trainer's step (channels-last, the margin head with soft labels, SGD) in each
of fp32 / bf16 autocast x eager / torch.compile; "plain" is the same model, head, batch and
optimizer in a textbook loop: contiguous NCHW, fp32, no compile. All run in this process on
the same in-memory batch, in interleaved rounds, so machine noise hits every variant alike.
bf16 on a CPU without native bf16 is emulated and ~20x slower: it is timed on one small batch.

Keys: ``auto_choice`` (the variant ``synface.runtime`` picks here), ``auto_img_per_s``,
``best_img_per_s``, ``auto_within_10pct``, ``ratio`` (auto vs plain fp32, goal >= 1.5),
``host`` (CPU capability, bf16 support, torch, threads). To see an AVX2-only host on a bf16
one: ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/train_throughput.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from synface.datasets.storage import SoftLabels
from synface.models.inference import fit_input
from synface.faces.templates import parse_size
from synface.models.backbones import get_backbone
from synface.models.heads import MarginHead
from synface.runtime import describe_host, native_cpu_bf16, plan_runtime, tune_cpu_allocator
from synface.train.config import load_train_config
from synface.train.loop import TrainingModule

from common import write_result

VARIANTS = {"fp32_eager": ("fp32", False), "fp32_compiled": ("fp32", True),
            "bf16_eager": ("bf16", False), "bf16_compiled": ("bf16", True)}


def make_batch(batch: int, classes: int, size=(112, 96)):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, size[0], size[1], 3), dtype=torch.uint8, generator=g).permute(0, 3, 1, 2)
    labels = torch.randint(0, classes, (batch,), generator=g)
    return images, labels


def ours_step(module, opt, images, labels, input_size, precision: str, channels_last: bool = True):
    """The Trainer's step: the whole TrainingModule (backbone, head, soft-label loss) is what
    it compiles."""
    x = images.float().div_(255.0)  # channels-last memory, as the loader delivers it
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = fit_input(x, input_size).mul_(2.0).sub_(1.0).contiguous(memory_format=layout)
    soft = SoftLabels(labels, torch.full_like(labels, -1), torch.ones(len(labels)))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = module(x, soft, None, 1.0)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def plain_step(backbone, head, opt, images, labels, input_size):
    x = images.contiguous().float() / 255.0
    x = F.interpolate(x, size=input_size, mode="area") if tuple(x.shape[-2:]) != tuple(input_size) else x
    x = x * 2 - 1
    loss = F.cross_entropy(head(backbone(x), labels), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()


def build(name: str, input_size, classes: int, variant: str | None, compile_mode: str,
          backbone: torch.nn.Module | None = None, compile_options: dict | None = None):
    """A fresh model + optimizer and a zero-argument step for ``variant`` (None: plain).
    ``backbone`` replaces the named one (benchmarks/fp32_train_levers.py swaps layers);
    ``compile_options`` are inductor options on top of ``compile_mode``'s."""
    torch.manual_seed(0)
    backbone = (backbone if backbone is not None else get_backbone(name, input_size, 512)).train()
    head = MarginHead(512, classes)
    if variant is None:
        opt = torch.optim.SGD(list(backbone.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
        return lambda images, labels: plain_step(backbone, head, opt, images, labels, input_size)
    precision, compiled = VARIANTS[variant]
    module = TrainingModule(backbone.to(memory_format=torch.channels_last), head, classes, 0)
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    if compiled and compile_options:
        # torch.compile takes a mode or options, not both: the mode as its options, plus these.
        from torch._inductor import list_mode_options
        runner = torch.compile(module, options={**list_mode_options(compile_mode), **compile_options})
    else:
        runner = torch.compile(module, mode=compile_mode) if compiled else module
    return lambda images, labels: ours_step(runner, opt, images, labels, input_size, precision)


def measure(name: str, input_size, batch: int, rounds: int, steps: int, classes: int = 1000,
            compile_mode: str = "max-autotune-no-cudagraphs", variants=tuple(VARIANTS)) -> dict:
    images, labels = make_batch(batch, classes)
    emulated_bf16 = not native_cpu_bf16()
    small = min(batch, 32)
    runs, warmup = {}, {}
    for variant in (*variants, "plain"):
        step = build(name, input_size, classes, None if variant == "plain" else variant, compile_mode)
        slow = variant != "plain" and VARIANTS[variant][0] == "bf16" and emulated_bf16
        args = (images[:small], labels[:small]) if slow else (images, labels)
        start = time.perf_counter()
        step(*args)  # warm-up (and compilation)
        warmup[variant] = round(time.perf_counter() - start, 1)
        runs[variant] = (step, args, slow)
    times = {v: 0.0 for v in runs}
    counts = {v: 0 for v in runs}
    for r in range(rounds):
        for variant, (step, args, slow) in runs.items():
            if slow and r > 0:
                continue
            n = 1 if slow else steps
            start = time.perf_counter()
            for _ in range(n):
                step(*args)
            times[variant] += time.perf_counter() - start
            counts[variant] += n * len(args[0])
    rates = {v: round(counts[v] / times[v], 1) for v in runs}
    return {"img_per_s": rates, "warmup_s": warmup, "batch": batch, "backbone": name, "input_size": list(input_size),
            "bf16_emulated": emulated_bf16, "bf16_timed_batch": small if emulated_bf16 else batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    tune_cpu_allocator()
    cpu = load_train_config("cpu")
    plan = plan_runtime("cpu", cpu.amp, cpu.compile, cpu.channels_last, cpu.threads, cpu.compile_mode)
    print(f"host: {describe_host(plan.host)}\nauto: {plan.summary()}", flush=True)
    preset = measure(cpu.backbone, parse_size(cpu.input_size), cpu.batch_size, args.rounds, args.steps,
                     compile_mode=plan.compile_mode)
    rates = preset["img_per_s"]
    auto_choice = f"{plan.precision}_{'compiled' if plan.compile else 'eager'}"
    ours = {k: v for k, v in rates.items() if k != "plain"}
    best = max(ours, key=ours.get)
    paper = measure("lresnet50e_ir", (112, 96), 32, 1, 1, variants=(f"{plan.precision}_eager",))
    result = {
        "host": plan.host,
        "host_summary": describe_host(plan.host),
        "auto_choice": auto_choice,
        "auto_reasons": plan.reasons,
        "auto_img_per_s": rates[auto_choice],
        "best_choice": best,
        "best_img_per_s": rates[best],
        "auto_within_10pct": rates[auto_choice] >= 0.9 * rates[best],
        "plain_img_per_s": rates["plain"],
        "ratio": round(rates[auto_choice] / rates["plain"], 3),
        "goal_ratio": 1.5,
        "cpu_preset": preset,
        "lresnet50e_ir_112x96_batch32": paper,
    }
    write_result(args.json, result)


if __name__ == "__main__":
    main()
