#!/usr/bin/env python
"""Training-loader throughput and dataset generation time (issue 4).

1. Generates (or reuses) a WIDTH x DEPTH identity-mixup dataset with ``generate_dataset``
   and records the wall time (goal: report it for 1,000 x 20).
2. Measures images/s delivered by the training loader (``ShardedDataset`` +
   ``DataLoader``, shuffled, augmentation off), as uint8 batches and after the float
   normalisation to [-1, 1] that training applies. Goal: >= 2,000 img/s at 112x96.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from synface.datasets.build import generate_dataset
from synface.datasets.spec import load_spec, resolve_spec
from synface.datasets.storage import ShardedDataset, collate_batch

from common import write_result


def loader_rate(ds: ShardedDataset, batch: int, workers: int, epochs: int, normalise: bool) -> float:
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate_batch,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0),
    )
    for _ in loader:  # warm-up: page cache, workers
        break
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, labels in loader:
            if normalise:
                images = images.float().sub_(127.5).div_(127.5)
            count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/bench/loader_1k_20"))
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="generation processes")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    spec = resolve_spec(load_spec("syn_10k_50_im"), width=args.width, depth=args.depth)
    fresh = not (args.data / "dataset.json").is_file()
    start = time.perf_counter()
    generate_dataset(spec, args.data, workers=args.workers)
    generation_s = time.perf_counter() - start
    ds = ShardedDataset(args.data)
    result = {
        "dataset": str(args.data),
        "images": len(ds),
        "identities": ds.num_classes,
        "image_size": list(ds.image_size),
        "generation_wall_s": round(generation_s, 1) if fresh else None,
        "generation_images_per_s": round(len(ds) / generation_s, 1) if fresh else None,
        "generation_workers": args.workers,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    for workers in (0, 2):
        result[f"uint8_images_per_s_workers{workers}"] = round(loader_rate(ds, args.batch, workers, args.epochs, False), 1)
        result[f"normalised_images_per_s_workers{workers}"] = round(loader_rate(ds, args.batch, workers, args.epochs, True), 1)
    result["images_per_s"] = max(v for k, v in result.items() if k.startswith("normalised_images_per_s"))
    result["goal_images_per_s"] = 2000
    write_result(args.json, result)


if __name__ == "__main__":
    main()
