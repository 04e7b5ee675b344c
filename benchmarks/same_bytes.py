#!/usr/bin/env python
"""Fingerprints of what a code change must not alter: a small appearance basis, a generated
dataset's shards, its validation split and a fixed-seed fp32 training run's weights.

Run it on two trees and compare the JSON lines (issue 21's refactor was checked so):

    git worktree add /tmp/before HEAD~1
    PYTHONPATH=/tmp/before/src python benchmarks/same_bytes.py /tmp/fp-before
    python benchmarks/same_bytes.py /tmp/fp-after

Trees from before the validation split lived in the dataset read it from the run folder.
"""
import hashlib, json, os, sys
from pathlib import Path
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
os.environ["SYNFACE_CACHE"] = str(out / "cache")
import torch
try:
    from synface.facemodel.basis_builder import build_learned_appearance
    from synface.facemodel.basis import default_basis_path
except ImportError:
    from synface.facemodel.learned import build_learned_appearance, default_basis_path
from synface.datasets.build import generate_dataset
from synface.datasets.spec import load_spec, resolve_spec
from synface.train.config import load_train_config
from synface.train.loop import Trainer
build_learned_appearance(Path(os.environ["SYNFACE_DATA"]) / "celeba-299", default_basis_path(), components=5,
                         residual_components=2, max_identities=6, progress=False)
spec = resolve_spec(load_spec("syn3"), width=8, depth=4)
generate_dataset(spec, out / "data", workers=1, progress=False)
try:
    from synface.datasets.build import generate_validation_split
    generate_validation_split(out / "data", 4, 2)
    val = out / "data" / "validation"
except ImportError:
    val = out / "run" / "validation-data"
cfg = load_train_config("cpu", {"compile": False, "amp": False, "batch_size": 8, "workers": 0, "optim.epochs": 2,
                                "optim.milestones": [1.5], "validation.identities": 4, "validation.samples": 2})
summary = Trainer(cfg, out / "data", out / "run", progress=False).run()
state = torch.load(out / "run" / "checkpoint.pt", weights_only=False)
def tree(path):
    h = hashlib.sha1()
    for p in sorted(Path(path).rglob("*")):
        if p.is_file() and p.parent.name == "shards" and p.parent.parent == Path(path):
            h.update(p.name.encode()); h.update(p.read_bytes())
    return h.hexdigest()[:16]
w = hashlib.sha1()
for part in ("model", "head"):
    for k, v in state[part].items():
        w.update(k.encode()); w.update(v.numpy().tobytes())
print(json.dumps({"basis": hashlib.sha1(default_basis_path().read_bytes()).hexdigest()[:16],
                  "data_shards": tree(out / "data"), "validation_shards": tree(val),
                  "weights": w.hexdigest()[:16], "val_accuracy": summary["val_accuracy"],
                  "final_loss": summary["final_loss"], "steps": summary["steps"]}))
