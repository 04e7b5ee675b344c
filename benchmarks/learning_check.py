#!/usr/bin/env python
"""A learning check a CI-sized run can't fake (issue 5): train the `cpu` preset on ~2K real
images of celeba-299 for a few minutes, then score LFW, next to the same network untrained.

Writes JSON with both LFW accuracies, the training summary and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from synface.datasets.real import import_identity_folder
from synface.evaluate.benchmark import evaluate_model
from synface.faces.templates import parse_size
from synface.models.backbones import get_backbone
from synface.models.checkpoint import load_backbone
from synface.paths import data_path
from synface.runtime import tune_cpu_allocator
from synface.train.config import load_train_config
from synface.train.loop import Trainer

from common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/learning_check"))
    parser.add_argument("--identities", type=int, default=80)
    parser.add_argument("--per-identity", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    tune_cpu_allocator()
    real = args.out / "celeba-subset"
    if not (real / "dataset.json").is_file():
        import_identity_folder(data_path("celeba-299"), real, max_identities=args.identities,
                               max_per_identity=args.per_identity)
    cfg = load_train_config("cpu", {
        "optim.epochs": args.epochs,
        "optim.milestones": [0.6 * args.epochs, 0.8 * args.epochs, 0.9 * args.epochs],
        "validation.every_epochs": 5,
    })
    start = time.perf_counter()
    trainer = Trainer(cfg, real, args.out / "run")
    summary = trainer.run(overwrite=True)  # a benchmark rerun measures a fresh run again
    wall = time.perf_counter() - start
    size = parse_size(cfg.input_size)
    model, _ = load_backbone(args.out / "run" / "checkpoint.pt")
    trained = evaluate_model(model, "lfw", size, amp=trainer.runtime.precision)
    torch.manual_seed(0)
    untrained = evaluate_model(get_backbone(cfg.backbone, size), "lfw", size, amp=trainer.runtime.precision)
    result = {
        "train_images": summary["synthetic_images"],
        "train_identities": summary["synthetic_classes"],
        "backbone": cfg.backbone,
        "input_size": list(size),
        "epochs": summary["epochs"],
        "train_wall_s": round(wall, 1),
        "train_img_per_s": summary["train_img_per_s"],
        "lfw_accuracy_trained": trained["accuracy_mean"],
        "lfw_accuracy_trained_std": trained["accuracy_std"],
        "lfw_auc_trained": trained["auc"],
        "lfw_accuracy_random_init": untrained["accuracy_mean"],
        "lfw_accuracy_random_init_std": untrained["accuracy_std"],
        "lfw_auc_random_init": untrained["auc"],
        "runtime": trainer.runtime.record(),
    }
    write_result(args.json, result)


if __name__ == "__main__":
    main()
