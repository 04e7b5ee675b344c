#!/usr/bin/env python
"""The backbones' own batch norm / PReLU against ATen's inside the real training loop (issue 17).

``fp32_train_levers.py`` times the bare step on one in-memory batch; this times what the demo
does: the Trainer on a generated dataset (loader worker, augmentation, margin head), the
``cpu`` preset with the demo's overrides, ``--steps`` steps. Each round trains one run with
``synface.models.backbones.common``'s BatchNorm2d / PReLU ("ours") and one with
``nn.BatchNorm2d`` / ``nn.PReLU`` ("aten"), each in a fresh process, alternating; img/s are
the Trainer's own per-window figures after step 10 (compilation excluded).

    python benchmarks/trainer_batch_norm.py --data data/demo --json OUT   # after `make demo`
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import write_result

VARIANTS = ("aten", "ours")


def train_once(variant: str, data: Path, out: Path, steps: int) -> list[float]:
    """Train ``steps`` steps in this process and return the per-window img/s after step 10."""
    import torch

    if variant == "aten":
        import synface.models.backbones.mobilefacenet as mobilefacenet

        mobilefacenet.BatchNorm2d, mobilefacenet.PReLU = torch.nn.BatchNorm2d, torch.nn.PReLU
    from synface.experiments.demo import DEMO_OVERRIDES
    from synface.train.config import load_train_config
    from synface.train.loop import Trainer

    config = load_train_config("cpu", {**DEMO_OVERRIDES, "log_every": 5})
    trainer = Trainer(config, data, out, progress=False)
    from synface.models.backbones import common

    expected = torch.nn.BatchNorm2d if variant == "aten" else common.BatchNorm2d
    assert type(trainer.module.backbone.body[0][1]) is expected, "the swap did not reach the backbone"
    trainer.run(stop_at_step=steps, overwrite=True)
    return [round(r["img_per_s"], 1) for r in trainer.history if "img_per_s" in r and r["step"] > 10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a generated synthetic dataset (e.g. data/demo)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)  # a child process's single run
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(train_once(args.one, args.data, args.out, args.steps)))
        return
    if args.json is None:
        parser.error("--json is required")
    if not (args.data / "dataset.json").is_file():
        parser.error(f"{args.data} does not look like a generated dataset (run `make demo` first)")
    rates: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for variant in VARIANTS:
                done = subprocess.run([sys.executable, __file__, "--one", variant, "--data", str(args.data),
                                       "--out", f"{tmp}/{variant}", "--steps", str(args.steps)],
                                      check=True, capture_output=True, text=True)
                rates[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {round_ + 1} {variant}: {statistics.mean(rates[variant][-1]):.1f} img/s", flush=True)
    means = {v: [round(statistics.mean(r), 1) for r in runs] for v, runs in rates.items()}
    write_result(args.json, {
        "steps_per_run": args.steps, "rounds": args.rounds, "img_per_s_windows": rates,
        "img_per_s_mean_per_run": means,
        "gain_per_round": [round(o / a, 3) for o, a in zip(means["ours"], means["aten"])],
    })


if __name__ == "__main__":
    main()
