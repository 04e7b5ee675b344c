#!/usr/bin/env python
"""Is the synthetic-to-real gap a shift of BatchNorm statistics? (issue 18, a probe)

AdaBN (Li et al., 2016): a network's BatchNorm layers normalise with the mean and variance
they saw in training; on another domain those statistics shift. Re-estimating them on
*unlabelled* images of the target domain, with every weight kept, is the cheapest domain
adaptation there is. This script takes trained checkpoints, re-estimates their BatchNorm
statistics on the celeba-299 photos (real faces, never LFW; their identity labels unused),
and scores each on LFW before and after. The statistics are a cumulative average over one
pass (momentum None), with each photo and its mirror image, as the LFW protocol embeds both.

    python benchmarks/bn_adaptation.py runs/ab/gen_photo_variation_weak-seed0/checkpoint.pt \\
        runs/ab/gen_photo_variation_weak-seed1/checkpoint.pt --json runs/bench/bn_adaptation.json

Keys: ``rows`` (checkpoint, lfw_before, lfw_after, auc_before, auc_after, adapt_s),
``mean_change`` (points), ``photos``, ``host``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synface.evaluate.benchmark import evaluate_model
from synface.faces.landmarks import read_landmarks
from synface.faces.pipeline import aligned_crops
from synface.models.checkpoint import load_backbone
from synface.models.inference import to_input
from synface.paths import data_path

from common import write_result


def adapt_batch_norm(model: nn.Module, crops: np.ndarray, batch_size: int = 128, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are those of ``crops`` (and
    their mirror images); weights unchanged."""
    adapted = copy.deepcopy(model).train()
    for module in adapted.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the whole pass
    order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed)).numpy()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            x = to_input(crops[np.sort(order[start : start + batch_size])])
            adapted(torch.cat([x, x.flip(3)]))
    return adapted.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=Path("runs/bench/bn_adaptation.json"))
    args = parser.parse_args()
    root = data_path("celeba-299")
    landmarks = root / "landmarks.txt"
    paths = sorted(read_landmarks(landmarks))
    rows = []
    for checkpoint in args.checkpoints:
        model, spec = load_backbone(checkpoint, "cpu")
        size = tuple(spec["input_size"])
        crops, _ = aligned_crops(root, paths, size, landmarks, desc="align celeba-299")
        before = evaluate_model(model, "lfw", size, amp="fp32")
        start = time.perf_counter()
        adapted = adapt_batch_norm(model, crops)
        seconds = time.perf_counter() - start
        after = evaluate_model(adapted, "lfw", size, amp="fp32")
        rows.append({"checkpoint": str(checkpoint), "lfw_before": before["accuracy_mean"],
                     "lfw_after": after["accuracy_mean"], "auc_before": before["auc"], "auc_after": after["auc"],
                     "adapt_s": round(seconds, 1)})
        print(f"{checkpoint}: LFW {100 * rows[-1]['lfw_before']:.2f} -> {100 * rows[-1]['lfw_after']:.2f} %", flush=True)
    change = 100 * float(np.mean([r["lfw_after"] - r["lfw_before"] for r in rows]))
    write_result(args.json, {"rows": rows, "mean_change": round(change, 2), "photos": len(paths),
                             "precision": "fp32"})


if __name__ == "__main__":
    main()
