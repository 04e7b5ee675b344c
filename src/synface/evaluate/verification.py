"""Pair verification metrics: k-fold accuracy with held-out thresholds, ROC AUC, TAR@FAR.

Scores are similarities (higher = more likely the same person); a pair is called "same"
when its score is strictly above the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def identity_pairs(
    labels: np.ndarray, rng: np.random.Generator, different: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every same-identity pair of a labelled set, and ``different`` (default: as many)
    random pairs of different identities drawn with ``rng``; both (P, 2) index arrays."""
    same = [(a, b) for label in np.unique(labels) for i, a in enumerate(np.flatnonzero(labels == label))
            for b in np.flatnonzero(labels == label)[i + 1 :]]
    count = len(same) if different is None else different
    diff = []
    while len(diff) < count:
        a, b = rng.integers(len(labels), size=2)
        if labels[a] != labels[b]:
            diff.append((a, b))
    return np.array(same, np.int64).reshape(-1, 2), np.array(diff, np.int64).reshape(-1, 2)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold with the highest accuracy on (scores, same), by exact search.

    Every distinct way of splitting the sorted scores is tried: thresholds sit midway
    between consecutive distinct scores, plus one below the minimum and one above the
    maximum. Ties in accuracy go to the lowest threshold. Returns (threshold, accuracy).
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if scores.shape != same.shape or scores.ndim != 1 or len(scores) == 0:
        raise ValueError("scores and labels must be equal-length non-empty vectors")
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    distinct = np.flatnonzero(np.diff(s) > 0)  # split after these positions
    cut_after = np.concatenate([[-1], distinct, [len(s) - 1]])
    # A threshold just above s[cut] calls everything up to position cut "different".
    neg_below = np.concatenate([[0], np.cumsum(~y)])[cut_after + 1]
    pos_above = y.sum() - np.concatenate([[0], np.cumsum(y)])[cut_after + 1]
    accuracy = (neg_below + pos_above) / len(s)
    k = int(np.argmax(accuracy))
    if cut_after[k] < 0:
        threshold = s[0] - 1.0
    elif cut_after[k] == len(s) - 1:
        threshold = s[-1] + 1.0
    else:
        threshold = (s[cut_after[k]] + s[cut_after[k] + 1]) / 2
    return float(threshold), float(accuracy[k])


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((np.asarray(scores) > threshold) == np.asarray(same, dtype=bool)))


@dataclass
class KFoldResult:
    accuracies: np.ndarray  # (K,) test accuracy per fold
    thresholds: np.ndarray  # (K,) threshold chosen on the other folds

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        return float(self.accuracies.std())


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """For each fold: pick the threshold on all other folds, measure accuracy on this one."""
    scores, same, folds = np.asarray(scores), np.asarray(same, dtype=bool), np.asarray(folds)
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ValueError("k-fold verification needs at least 2 folds")
    accuracies, thresholds = [], []
    for fold in fold_ids:
        test = folds == fold
        threshold, _ = best_threshold(scores[~test], same[~test])
        thresholds.append(threshold)
        accuracies.append(accuracy_at(scores[test], same[test], threshold))
    return KFoldResult(np.array(accuracies), np.array(thresholds))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True accept rate at the largest threshold-free operating point with FAR <= ``far``."""
    fpr, tpr, _ = roc_curve(np.asarray(same, dtype=int), np.asarray(scores))
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def verification_metrics(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """The numbers a verification report carries."""
    kfold = kfold_accuracy(scores, same, folds)
    same = np.asarray(same, dtype=bool)
    return {
        "pairs": int(len(scores)),
        "folds": int(len(np.unique(folds))),
        "accuracy_mean": kfold.mean,
        "accuracy_std": kfold.std,
        "fold_accuracies": kfold.accuracies.tolist(),
        "fold_thresholds": kfold.thresholds.tolist(),
        "auc": float(roc_auc_score(same.astype(int), scores)),
        "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3),
        "tar_at_far_1e-2": tar_at_far(scores, same, 1e-2),
    }
