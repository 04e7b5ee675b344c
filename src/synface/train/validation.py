"""Validation on held-out synthetic identities (seed namespace ``validation``), never LFW:
picking an epoch or a recipe on the test benchmark would make its number meaningless."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synface.datasets.build import generate_dataset
from synface.datasets.spec import DatasetSpec, load_spec, resolve_spec
from synface.datasets.storage import ShardedDataset
from synface.evaluate.verification import identity_pairs, verification_metrics
from synface.train.config import ValidationConfig


def validation_spec(train_spec: DatasetSpec | None, config: ValidationConfig) -> DatasetSpec:
    """The training set's generator settings, other people, no mixup."""
    base = train_spec or load_spec("syn_10k_50")
    spec = replace(base, name=f"{base.name}-validation", namespace="validation", mixup="none", groups=None,
                   identities=config.identities, samples=config.samples, scale=1.0)
    return resolve_spec(spec)


def build_validation_set(folder: Path, train_spec: DatasetSpec | None, config: ValidationConfig) -> ShardedDataset:
    spec = validation_spec(train_spec, config)
    generate_dataset(spec, folder, progress=False)
    return ShardedDataset(folder)


def validation_pairs(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All same-identity pairs and as many random different-identity pairs, in 10 folds."""
    rng = np.random.default_rng(seed)
    same, diff = identity_pairs(labels, rng)
    pairs = np.concatenate([same, diff])
    is_same = np.array([True] * len(same) + [False] * len(diff))
    folds = rng.permutation(len(pairs)) % 10
    return pairs, is_same, folds


def fit_input(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-resize a float NCHW batch to the network's input size (a no-op when equal)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="area")


@torch.no_grad()
def embed_dataset(model: nn.Module, ds: ShardedDataset, size: tuple[int, int], device: torch.device,
                  amp: bool = False, batch: int = 128) -> np.ndarray:
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(ds), batch):
        x = torch.from_numpy(ds.images(np.arange(start, min(start + batch, len(ds))))).to(device)
        x = fit_input(x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0), size).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out.append(F.normalize(model(x).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def validate(model: nn.Module, ds: ShardedDataset, size: tuple[int, int], device: torch.device, amp: bool = False) -> dict:
    emb = embed_dataset(model, ds, size, device, amp)
    pairs, same, folds = validation_pairs(ds.labels)
    scores = np.einsum("ij,ij->i", emb[pairs[:, 0]], emb[pairs[:, 1]])
    metrics = verification_metrics(scores, same, folds)
    return {"val_accuracy": metrics["accuracy_mean"], "val_auc": metrics["auc"]}
