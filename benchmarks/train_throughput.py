#!/usr/bin/env python
"""Training-step throughput on this machine: our step vs a plain PyTorch loop (issue 5).

"ours" is the Trainer's step with the preset's settings (channels_last, bf16 autocast and
torch.compile as the preset says; the margin head with soft labels; SGD); "plain" is the same model, head, batch and optimizer in
a textbook loop: contiguous NCHW, fp32, no compile. Both run in this process on the same
in-memory batch, alternating, so machine noise hits both. Goal: ratio >= 1.5.
Also reports the `cpu` preset's img/s and LResNet50E-IR at 112x96 (the paper's network).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from synface.faces.templates import parse_size
from synface.models.backbones import get_backbone
from synface.datasets.storage import SoftLabels
from synface.models.heads import MarginHead
from synface.train.loop import TrainingModule
from synface.runtime import tune_cpu_allocator
from synface.train.config import load_train_config
from synface.evaluate.embed import fit_input

from common import write_result


def make_batch(batch: int, classes: int, size=(112, 96)):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, size[0], size[1], 3), dtype=torch.uint8, generator=g).permute(0, 3, 1, 2)
    labels = torch.randint(0, classes, (batch,), generator=g)
    return images, labels


def ours_step(module, head, opt, images, labels, input_size, amp: bool, channels_last: bool = True):
    """The Trainer's step: the whole TrainingModule (backbone, head, soft-label loss) is what
    it compiles."""
    x = images.float().div_(255.0)  # channels-last memory, as the loader delivers it
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = fit_input(x, input_size).mul_(2.0).sub_(1.0).contiguous(memory_format=layout)
    soft = SoftLabels(labels, torch.full_like(labels, -1), torch.ones(len(labels)))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
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


def measure(name: str, input_size, batch: int, amp: bool, rounds: int, steps: int, classes: int = 1000,
            compile: bool = False, channels_last: bool = True, compile_mode: str = "default") -> dict:
    images, labels = make_batch(batch, classes)
    results = {}
    setups = {}
    for kind in ("ours", "plain"):
        torch.manual_seed(0)
        backbone = get_backbone(name, input_size, 512).train()
        head = MarginHead(512, classes)
        if kind == "ours" and channels_last:
            backbone = backbone.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(list(backbone.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
        if kind == "ours":
            module = TrainingModule(backbone, head, classes, 0)
            backbone = torch.compile(module, mode=compile_mode) if compile else module
        setups[kind] = (backbone, head, opt)
    run = {
        "ours": lambda: ours_step(*setups["ours"], images, labels, input_size, amp, channels_last),
        "plain": lambda: plain_step(*setups["plain"], images, labels, input_size),
    }
    start = time.perf_counter()
    run["ours"]()  # warm-up (and compilation)
    results["ours_warmup_s"] = round(time.perf_counter() - start, 1)
    run["ours"]()
    run["plain"]()
    times = {k: 0.0 for k in run}
    for _ in range(rounds):
        for kind, fn in run.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[kind] += time.perf_counter() - start
    for kind in run:
        results[f"{kind}_img_per_s"] = round(rounds * steps * batch / times[kind], 1)
    results["ratio"] = round(results["ours_img_per_s"] / results["plain_img_per_s"], 3)
    results.update(backbone=name, input_size=list(input_size), batch=batch, amp=amp, compile=compile,
                   channels_last=channels_last, compile_mode=compile_mode if compile else None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    tune_cpu_allocator()
    cpu = load_train_config("cpu")
    preset = measure(cpu.backbone, parse_size(cpu.input_size), cpu.batch_size, cpu.amp, args.rounds, args.steps,
                     compile=cpu.compile, channels_last=cpu.channels_last, compile_mode=cpu.compile_mode)
    paper = measure("lresnet50e_ir", (112, 96), 32, True, 2, 1, compile=False)
    result = {
        "ours_img_per_s": preset["ours_img_per_s"],
        "plain_img_per_s": preset["plain_img_per_s"],
        "ratio": preset["ratio"],
        "goal_ratio": 1.5,
        "cpu_preset": preset,
        "goal_cpu_preset_img_per_s": 100,
        "lresnet50e_ir_112x96_batch32": paper,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    write_result(args.json, result)


if __name__ == "__main__":
    main()
