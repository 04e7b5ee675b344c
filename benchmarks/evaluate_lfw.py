#!/usr/bin/env python
"""Time the whole LFW evaluation (cached crops) of a random-init MobileFaceNet.

Goal (issue 2): <= 60 s on 2 CPU cores. The crop cache is warmed first, so ``seconds`` is
load crops + embed 7,701 images (x2 with flip) + score 6,000 pairs, in fp32 (the default).
The same run also times --amp (bf16 on CPU) and --no-flip for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from synface.datasets.pairs import load_benchmark
from synface.evaluate.benchmark import evaluate_model
from synface.faces.pipeline import aligned_crops
from synface.models import get_backbone
from synface.runtime import resolve_device, tune_cpu_allocator

from common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True, help="output JSON")
    parser.add_argument("--size", default="112x96")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    tune_cpu_allocator()
    device = resolve_device(args.device)
    size = tuple(int(v) for v in args.size.split("x"))
    bench = load_benchmark("lfw")
    warm = time.perf_counter()
    aligned_crops(bench.image_root, bench.images, size, bench.landmarks_file)
    warm = time.perf_counter() - warm
    torch.manual_seed(0)
    model = get_backbone("mobilefacenet", size)
    runs = {}
    for label, kwargs in {"fp32": {}, "amp": {"amp": True}, "fp32_no_flip": {"flip": False}}.items():
        record = evaluate_model(model, bench, size, device=device, **kwargs)
        runs[label] = {k: record[k] for k in ("seconds", "embed_seconds", "accuracy_mean", "auc")}
        runs[label]["images_per_s"] = len(bench.images) * (2 if record["flip"] else 1) / record["embed_seconds"]
        print(label, json.dumps(runs[label]))
    result = {
        "benchmark": "lfw",
        "model": "mobilefacenet (random init)",
        "input_size": list(size),
        "seconds": runs["fp32"]["seconds"],
        "seconds_amp": runs["amp"]["seconds"],
        "goal_seconds": 60,
        "first_alignment_seconds": warm,
        "runs": runs,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    write_result(args.json, result)
    print(json.dumps({k: result[k] for k in ("seconds", "seconds_amp", "goal_seconds")}))


if __name__ == "__main__":
    main()
