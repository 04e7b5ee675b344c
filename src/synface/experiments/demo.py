"""The main job end to end on embedded defaults (``make demo``, ``synface demo``).

generate a small identity-mixup dataset -> train the ``cpu`` preset -> evaluate on LFW (or,
without LFW, on held-out synthetic identities) -> ``report.md``, ``metrics.json``,
``checkpoint.pt`` in one folder. Sized for <= 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from synface.datasets.build import generate_dataset, stale_generator
from synface.datasets.spec import DatasetSpec, load_spec, resolve_spec
from synface.errors import DataNotFoundError
from synface.evaluate.benchmark import evaluate_model
from synface.faces.templates import parse_size
from synface.models.backbones import get_backbone
from synface.models.checkpoint import load_backbone
from synface.train.config import TrainConfig, load_train_config
from synface.train.loop import Trainer

DEMO_OVERRIDES = {
    "optim.epochs": 12,
    "optim.milestones": [7, 10, 11],
    "time_budget_min": 9.0,  # a safety net: stop and checkpoint rather than overrun
    "validation.every_epochs": 3,
}


def run_demo(
    out: str | Path = "runs/demo",
    data: str | Path = "data/demo",
    workers: int = 2,
    spec_name: str | Path = "demo",
    overrides: dict | None = None,
) -> dict:
    out, data = Path(out), Path(data)
    overrides = DEMO_OVERRIDES if overrides is None else overrides
    spec = resolve_spec(load_spec(spec_name))
    config = load_train_config("cpu", overrides)
    run = generate_train_evaluate(spec, data, config, out, workers, with_floor=True)
    summary, result, floor, timings = run["summary"], run["lfw"], run["floor"], run["seconds"]
    benchmark = "lfw" if result else "held-out synthetic identities (LFW not found)"
    metrics = {
        "benchmark": benchmark,
        "lfw_accuracy": result["accuracy_mean"] if result else None,
        "lfw_accuracy_std": result["accuracy_std"] if result else None,
        "lfw_auc": result["auc"] if result else None,
        "lfw_tar_at_far_1e-3": result["tar_at_far_1e-3"] if result else None,
        "lfw_accuracy_random_init": floor["accuracy_mean"] if floor else None,
        "synthetic_validation_accuracy": summary["val_accuracy"],
        "dataset": {"spec": spec.name, "identities": spec.num_identities, "images": spec.num_images, "mixup": spec.mixup},
        "training": summary,
        "config": "cpu preset + " + json.dumps(overrides),
        "seconds": timings,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _preview(out / "preview.png")
    (out / "report.md").write_text(render_report(metrics))
    return metrics


def replace_stale_run(spec: DatasetSpec, data: Path, out: Path) -> None:
    """An experiment's own data folder rendered by an older generator is deleted, with the
    run trained on it: its images can never match new ones and the model learned from them,
    so resuming either would mix two generators. (``synface generate`` refuses instead: a
    user's dataset is theirs to delete.)"""
    made_by = stale_generator(data, spec)
    if made_by is None:
        return
    tqdm.write(f"{data} was rendered by an older generator ({made_by}): regenerating it and retraining {out}")
    shutil.rmtree(data)
    if out.is_dir():
        shutil.rmtree(out)


def generate_train_evaluate(
    spec: DatasetSpec, data: Path, config: TrainConfig, out: Path, workers: int = 2, with_floor: bool = False
) -> dict:
    """Generate ``spec`` into ``data`` (resumable), train ``config`` on it into ``out``
    (resumable from its checkpoint) and score the result on LFW (None without LFW).
    ``with_floor``: also score the same network untrained (the chance-level reference)."""
    timings = {}
    start = time.perf_counter()
    replace_stale_run(spec, data, out)
    generate_dataset(spec, data, workers=workers)
    timings["generate_s"] = time.perf_counter() - start
    t0 = time.perf_counter()
    summary = Trainer(config, data, out).run(resume=(out / "checkpoint.pt").is_file())
    timings["train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    size = parse_size(config.input_size)
    model, _ = load_backbone(out / "checkpoint.pt")
    try:
        result = evaluate_model(model, "lfw", size, amp=config.amp)
        floor = None
        if with_floor:
            torch.manual_seed(0)
            floor = evaluate_model(get_backbone(config.backbone, size), "lfw", size, amp=config.amp)
    except DataNotFoundError:
        result = floor = None
    timings["evaluate_s"] = time.perf_counter() - t0
    return {"summary": summary, "lfw": result, "floor": floor, "seconds": {k: round(v, 1) for k, v in timings.items()}}


def _preview(path: Path) -> None:
    from synface.generate.generator import FaceGenerator, GeneratorConfig
    from synface.generate.preview import preview_grid
    from synface.imageio import write_image

    generator = FaceGenerator(GeneratorConfig())
    write_image(path, preview_grid(generator, 4, 3, mixup_steps=10))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def render_report(m: dict) -> str:
    t, d, s = m["training"], m["dataset"], m["seconds"]
    lines = [
        "# synface demo",
        "",
        f"A face recogniser trained only on synthetic faces, end to end on this machine in "
        f"{sum(s.values()) / 60:.1f} minutes (generate {s['generate_s']:.0f} s, train {s['train_s']:.0f} s, "
        f"evaluate {s['evaluate_s']:.0f} s).",
        "",
        "| | value |",
        "|---|---|",
        f"| training data | `{d['spec']}`: {d['identities']} synthetic identities, {d['images']} images, identity mixup `{d['mixup']}` |",
        f"| network | {t['device']}, `cpu` preset (MobileFaceNet 56x48, ArcFace m=0.5 s=30) |",
        f"| training | {t['steps']} steps, {t['epochs']:.1f} epochs, {t['train_img_per_s']:.0f} img/s, "
        f"final loss {t['final_loss']:.3f}{' (stopped by time budget)' if t['stopped_by_time_budget'] else ''} |",
        f"| held-out synthetic verification | {_pct(m['synthetic_validation_accuracy'])} |",
        f"| **LFW accuracy (10-fold, 6,000 pairs)** | **{_pct(m['lfw_accuracy'])}** ± {_pct(m['lfw_accuracy_std'])} |",
        f"| LFW, same network untrained | {_pct(m['lfw_accuracy_random_init'])} |",
        f"| LFW AUC / TAR@FAR=1e-3 | {m['lfw_auc'] if m['lfw_auc'] is None else round(m['lfw_auc'], 4)} / "
        f"{_pct(m['lfw_tar_at_far_1e-3'])} |",
        "",
        "The paper's SynFace (LResNet50E-IR, 10K x 50 synthetic identities, 40 epochs on 8 GPUs) reaches",
        "88.98 % (91.97 % with identity mixup); this demo is a minutes-long CPU run of the same recipe on",
        "a few hundred identities, so it sits far below that. It shows the pipeline works end to end.",
        "",
        "![training curves](loss.png)",
        "",
        "![generated faces](preview.png)",
        "",
        "Files: `checkpoint.pt` (score it with `synface evaluate --checkpoint runs/demo/checkpoint.pt`),",
        "`metrics.json`, `metrics.csv`, `config.yaml`.",
        "",
    ]
    return "\n".join(lines)
