#!/usr/bin/env python
"""LFW evaluation speed on this machine: the whole evaluation (cached crops) with what
``auto`` picks, and embedding img/s of every precision x compile variant (issues 2 and 17).

``seconds`` is one whole LFW evaluation of a random-init MobileFaceNet at ``--size`` (load
crops + compile + embed 7,701 images x2 with flip + score 6,000 pairs) with the runtime
``auto`` picks (the default of ``synface evaluate``); goal <= 60 s on 2 CPU cores. Each
variant (fp32 / bf16 x eager / torch.compile) then embeds the same ``--sample`` crops with flip; bf16 on a
CPU without native bf16 is emulated and ~10x slower, so it embeds a quarter of them.
``full_pass_s_est`` adds the variant's warm-up (compilation) to a whole pass at its rate:
what a user choosing it for one evaluation would wait. Keys: ``auto_choice``,
``auto_img_per_s``, ``best_img_per_s``, ``auto_within_10pct`` (on full-pass seconds),
``host``. To see an AVX2-only host on a bf16 one, run with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from synface.evaluate.pairs import load_benchmark
from synface.evaluate.benchmark import EMBED_COMPILE_MIN_IMAGES, evaluate_model
from synface.evaluate.embed import embed_crops
from synface.faces.pipeline import aligned_crops
from synface.models import get_backbone
from synface.models.inference import fuse_for_inference
from synface.runtime import describe_host, native_cpu_bf16, plan_runtime, resolve_device, tune_cpu_allocator

from common import write_result

VARIANTS = {"fp32_eager": ("fp32", False), "fp32_compiled": ("fp32", True),
            "bf16_eager": ("bf16", False), "bf16_compiled": ("bf16", True)}


def time_variant(model, crops: np.ndarray, precision: str, compiled: bool, device, batch: int = 32) -> dict:
    net = fuse_for_inference(model.to(device)).to(memory_format=torch.channels_last)
    if compiled:
        net = torch.compile(net, dynamic=False)
    start = time.perf_counter()
    embed_crops(net, crops[:batch], batch, True, device, amp=precision, desc="warm-up")  # compiles here
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    embed_crops(net, crops, batch, True, device, amp=precision, desc=f"{precision} {'compiled' if compiled else 'eager'}")
    seconds = time.perf_counter() - start
    return {"img_per_s": round(2 * len(crops) / seconds, 1), "warmup_s": round(warmup, 1), "images": len(crops)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True, help="output JSON")
    parser.add_argument("--size", default="112x96")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sample", type=int, default=1024, help="crops embedded per variant")
    args = parser.parse_args()
    tune_cpu_allocator()
    device = resolve_device(args.device)
    size = tuple(int(v) for v in args.size.split("x"))
    bench = load_benchmark("lfw")
    plan = plan_runtime(device, long_run=len(bench.images) >= EMBED_COMPILE_MIN_IMAGES)  # as evaluate_model plans
    print(f"host: {describe_host(plan.host)}\nauto: {plan.summary()}", flush=True)
    warm = time.perf_counter()
    crops, _ = aligned_crops(bench.image_root, bench.images, size, bench.landmarks_file)
    warm = time.perf_counter() - warm
    torch.manual_seed(0)
    model = get_backbone("mobilefacenet", size)
    record = evaluate_model(model, bench, size, device=device)  # amp auto: the default
    print("auto", json.dumps({k: record[k] for k in ("seconds", "embed_seconds", "precision")}), flush=True)
    sample = np.ascontiguousarray(crops[: args.sample])
    emulated = device.type == "cpu" and not native_cpu_bf16()
    variants = {}
    for name, (precision, compiled) in VARIANTS.items():
        if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        subset = sample[: max(64, len(sample) // 4)] if precision == "bf16" and emulated else sample
        row = time_variant(model, subset, precision, compiled, device)
        row["full_pass_s_est"] = round(row["warmup_s"] + 2 * len(crops) / row["img_per_s"], 1)
        variants[name] = row
        print(name, json.dumps(row), flush=True)
    auto_choice = f"{plan.precision}_{'compiled' if plan.compile else 'eager'}"
    best = min(variants, key=lambda k: variants[k]["full_pass_s_est"])
    fastest = max(variants, key=lambda k: variants[k]["img_per_s"])
    result = {
        "benchmark": "lfw",
        "model": "mobilefacenet (random init)",
        "input_size": list(size),
        "seconds": round(record["seconds"], 1),
        "embed_seconds": round(record["embed_seconds"], 1),
        "precision": record["precision"],
        "goal_seconds": 60,
        "first_alignment_seconds": round(warm, 1),
        "auto_choice": auto_choice,
        "auto_reasons": plan.reasons,
        "auto_img_per_s": variants[auto_choice]["img_per_s"],
        "best_img_per_s": variants[fastest]["img_per_s"],
        "best_steady_choice": fastest,
        "best_full_pass_choice": best,
        "auto_within_10pct": variants[auto_choice]["full_pass_s_est"] <= 1.1 * variants[best]["full_pass_s_est"],
        "variants": variants,
        "bf16_emulated": emulated,
        "host": plan.host,
        "host_summary": describe_host(plan.host),
    }
    write_result(args.json, result)


if __name__ == "__main__":
    main()
