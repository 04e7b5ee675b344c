import numpy as np
import pytest

from synface.evaluate.verification import (
    accuracy_at,
    best_threshold,
    kfold_accuracy,
    tar_at_far,
    verification_metrics,
)


def test_best_threshold_finds_the_exact_split():
    # Sorted: 0.1(n) 0.2(n) 0.3(p) 0.4(n) 0.5(p) 0.6(p). Best: split between 0.2 and 0.3
    # (5/6 correct) -- the split between 0.4 and 0.5 is also 5/6; ties go to the lower one.
    scores = np.array([0.5, 0.1, 0.3, 0.6, 0.2, 0.4])
    same = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    threshold, acc = best_threshold(scores, same)
    assert threshold == pytest.approx(0.25)
    assert acc == pytest.approx(5 / 6)


def test_best_threshold_handles_ties_and_extremes():
    # All positives: everything above the minimum, threshold below all scores.
    t, acc = best_threshold(np.array([0.3, 0.3, 0.7]), np.array([True, True, True]))
    assert acc == 1.0 and t < 0.3
    # All negatives: threshold above the maximum.
    t, acc = best_threshold(np.array([0.3, 0.3, 0.7]), np.array([False, False, False]))
    assert acc == 1.0 and t > 0.7
    # Tied scores with mixed labels cannot be split apart: 3 of 4 by splitting below the 0.9.
    t, acc = best_threshold(np.array([0.5, 0.5, 0.5, 0.9]), np.array([True, False, False, True]))
    assert acc == pytest.approx(3 / 4) and 0.5 < t < 0.9


def test_best_threshold_matches_brute_force_on_random_scores():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 2)  # rounding creates ties
    same = rng.random(300) < 0.5
    _, acc = best_threshold(scores, same)
    candidates = np.concatenate([[scores.min() - 1], np.unique(scores)])
    brute = max(accuracy_at(scores, same, t) for t in candidates)
    assert acc == pytest.approx(brute)


def test_kfold_uses_thresholds_from_the_other_folds():
    # Fold 0 alone would be split at 0.45; folds 1 and 2 agree on a split between 0.6 and 0.7.
    scores = np.array([0.4, 0.5, 0.3, 0.8, 0.65, 0.75, 0.62, 0.9, 0.2, 0.7, 0.61, 0.95])
    same = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    folds = np.repeat([0, 1, 2], 4)
    result = kfold_accuracy(scores, same, folds)
    # Fold 0 tested at the threshold picked on folds 1+2: midway 0.65..0.7 = 0.675.
    assert result.thresholds[0] == pytest.approx(0.675)
    assert result.accuracies[0] == pytest.approx(3 / 4)  # 0.5 (same) falls below it
    # Fold 1 tested at the threshold from folds 0+2, where splitting 0.4|0.5 and 0.61|0.7 are
    # both 7/8 correct: the lower, 0.45, wins, and calls fold 1's 0.65 and 0.62 "same".
    assert result.thresholds[1] == pytest.approx(0.45)
    assert result.accuracies[1] == pytest.approx(2 / 4)
    assert result.mean == pytest.approx(result.accuracies.mean())


def test_tar_at_far_and_metrics_record():
    scores = np.concatenate([np.linspace(0.5, 1.0, 100), np.linspace(0.0, 0.6, 1000)])
    same = np.concatenate([np.ones(100, bool), np.zeros(1000, bool)])
    # Negatives above 0.5999 are 1 in 1000: at FAR <= 1e-3 positives must beat 0.6-ish.
    tar = tar_at_far(scores, same, 1e-3)
    assert tar == pytest.approx(np.mean(np.linspace(0.5, 1.0, 100) >= 0.6), abs=0.02)
    record = verification_metrics(scores, same, np.arange(1100) % 10)
    for key in ("pairs", "folds", "accuracy_mean", "accuracy_std", "auc", "tar_at_far_1e-3", "tar_at_far_1e-2"):
        assert key in record
    assert record["pairs"] == 1100 and record["folds"] == 10


def test_compiled_embedding_matches_eager_and_pads_the_last_batch():
    import torch

    from synface.evaluate.embed import embed_crops
    from synface.models import get_backbone

    torch.manual_seed(0)
    model = get_backbone("mobilefacenet", (56, 48))
    crops = np.random.default_rng(0).integers(0, 256, (40, 56, 48, 3), dtype=np.uint8)
    eager = embed_crops(model, crops, batch_size=16)
    compiled = embed_crops(model, crops, batch_size=16, compile=True)  # batches 16, 16, 8 (+8 padding)
    assert compiled.shape == eager.shape == (40, 512)
    assert float((eager * compiled).sum(1).min()) > 0.9999
