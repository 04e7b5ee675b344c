import math

import pytest
import torch
import torch.nn.functional as F

from synface.models.heads import MarginConfig, MarginHead, margin_target, soft_margin_loss


def head_with_cosines(cos_rows: list[list[float]], config: MarginConfig) -> tuple[MarginHead, torch.Tensor]:
    """A head and embeddings whose cosine matrix is exactly ``cos_rows`` (orthonormal weights)."""
    cos = torch.tensor(cos_rows, dtype=torch.float64)
    classes = cos.shape[1]
    head = MarginHead(classes + 1, classes, config)
    with torch.no_grad():
        head.weight.copy_(torch.eye(classes, classes + 1))
    rest = (1 - (cos**2).sum(1, keepdim=True)).clamp_min(0).sqrt()
    return head, torch.cat([cos, rest], dim=1).float()


@pytest.mark.parametrize(
    "loss, margins, expected",
    [
        ("arcface", (1.0, 0.5, 0.0), lambda c: math.cos(math.acos(c) + 0.5)),
        ("cosface", (1.0, 0.0, 0.35), lambda c: c - 0.35),
        ("sphereface", (1.35, 0.0, 0.0), lambda c: math.cos(1.35 * math.acos(c))),
        ("combined", (1.2, 0.3, 0.2), lambda c: math.cos(1.2 * math.acos(c) + 0.3) - 0.2),
    ],
)
def test_margin_logits_match_hand_computation(loss, margins, expected):
    m1, m2, m3 = margins
    config = MarginConfig(loss=loss, m1=m1, m2=m2, m3=m3, scale=30.0)
    head, emb = head_with_cosines([[0.6, 0.1, -0.2], [0.3, 0.8, 0.1]], config)
    logits = head(emb, torch.tensor([0, 1]))
    want = torch.tensor([[30 * expected(0.6), 3.0, -6.0], [9.0, 30 * expected(0.8), 3.0]])
    torch.testing.assert_close(logits, want, atol=1e-4, rtol=1e-5)


def test_target_logit_keeps_falling_past_pi():
    theta = torch.linspace(0.0, math.pi, 2001, dtype=torch.float64)
    for m in [(1.0, 0.5, 0.0), (1.35, 0.0, 0.0), (4.0, 0.0, 0.0)]:
        psi = margin_target(torch.cos(theta), *m)
        assert torch.all(psi[1:] <= psi[:-1] + 1e-9), m
    # ArcFace at theta + m > pi: (-1)^1 cos(phi) - 2, not cos(phi)
    c = -0.95
    phi = math.acos(c) + 0.5
    assert float(margin_target(torch.tensor(c, dtype=torch.float64), 1.0, 0.5, 0.0)) == pytest.approx(-math.cos(phi) - 2)


def test_soft_labels_with_weights_one_and_zero_equal_the_hard_loss_exactly():
    torch.manual_seed(0)
    head = MarginHead(16, 10)
    emb = torch.randn(6, 16)
    label = torch.tensor([0, 3, 5, 9, 2, 2])
    # Per-row hard losses, averaged by the same reduction soft_margin_loss uses (cross_entropy's
    # own "mean" sums in another order on some CPUs: AVX-512 hosts differ in the last bit).
    hard = F.cross_entropy(head(emb, label), label, reduction="none").mean()
    none = soft_margin_loss(head, emb, label, torch.full_like(label, -1), torch.ones(6))
    zero_weight = soft_margin_loss(head, emb, label, torch.tensor([1, 1, 1, 1, 1, 1]), torch.ones(6))
    assert torch.equal(none, hard) and torch.equal(zero_weight, hard)


def test_soft_label_loss_is_the_weighted_sum_of_both_classes():
    torch.manual_seed(1)
    head = MarginHead(16, 10)
    emb = torch.randn(4, 16)
    label, other, phi = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7]), torch.tensor([0.6, 0.7, 0.8, 0.9])
    ce = lambda t: F.cross_entropy(head(emb, t), t, reduction="none")  # noqa: E731
    want = (phi * ce(label) + (1 - phi) * ce(other)).mean()
    torch.testing.assert_close(soft_margin_loss(head, emb, label, other, phi), want)


def test_unknown_loss_name_is_an_error():
    with pytest.raises(ValueError, match="unknown margin loss 'arc'"):
        MarginConfig(loss="arc").margins()
