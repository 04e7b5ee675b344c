"""Validation on held-out synthetic identities (seed namespace ``validation``), never LFW:
picking an epoch or a recipe on the test benchmark would make its number meaningless. The
dataset builder writes the split (``datasets.build.generate_validation_split``); training
only opens it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from synface.datasets.storage import ShardedDataset
from synface.evaluate.embed import embed_crops
from synface.evaluate.verification import identity_pairs, verification_metrics


def validation_pairs(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All same-identity pairs and as many random different-identity pairs, in 10 folds."""
    rng = np.random.default_rng(seed)
    same, diff = identity_pairs(labels, rng)
    pairs = np.concatenate([same, diff])
    is_same = np.array([True] * len(same) + [False] * len(diff))
    folds = rng.permutation(len(pairs)) % 10
    return pairs, is_same, folds


def validate(model: nn.Module, ds: ShardedDataset, size: tuple[int, int], device: torch.device,
             amp: bool | str = False, channels_last: bool = True) -> dict:
    """Verification accuracy on the held-out set. ``channels_last`` should match the training
    model's layout, so that embedding never converts the model being trained."""
    was_training = model.training
    emb = embed_crops(model, ds.images(np.arange(len(ds))), batch_size=128, flip=False, device=device,
                      channels_last=channels_last, amp=amp, desc="validate", input_size=size)
    model.train(was_training)  # embedding switches the model to eval mode
    pairs, same, folds = validation_pairs(ds.labels)
    scores = np.einsum("ij,ij->i", emb[pairs[:, 0]], emb[pairs[:, 1]])
    metrics = verification_metrics(scores, same, folds)
    return {"val_accuracy": metrics["accuracy_mean"], "val_auc": metrics["auc"]}
