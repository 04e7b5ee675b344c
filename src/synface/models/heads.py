"""Margin-softmax classification heads (paper Eq. 1) and the soft-label loss of identity mixup.

For an embedding x and class weights W_k, cos θ_k = <x/|x|, W_k/|W_k|>. The logit of the
target class is s·(ψ(m1·θ + m2) − m3), every other class keeps s·cos θ_k. ψ is cos on
[0, π] continued past π as SphereFace does, ψ(φ) = (−1)^k cos φ − 2k with k = ⌊φ/π⌋, so the
target logit keeps falling as θ grows even where m1·θ + m2 > π (plain cos would turn back
up there and reward a worse angle).

    SphereFace: (m1, 0, 0)   ArcFace: (1, m2, 0)   CosFace: (1, 0, m3)   and combinations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PRESETS = {
    "arcface": (1.0, 0.5, 0.0),
    "cosface": (1.0, 0.0, 0.35),
    "sphereface": (1.35, 0.0, 0.0),  # the multiplicative margin as insightface's combined loss uses it
}


@dataclass
class MarginConfig:
    """Paper defaults: ArcFace with m2 = 0.5, s = 30."""

    loss: str = "arcface"  # arcface | cosface | sphereface | combined (m1, m2, m3 as given)
    m1: float | None = None
    m2: float | None = None
    m3: float | None = None
    scale: float = 30.0

    def margins(self) -> tuple[float, float, float]:
        if self.loss == "combined":
            return (self.m1 if self.m1 is not None else 1.0, self.m2 or 0.0, self.m3 or 0.0)
        if self.loss not in PRESETS:
            raise ValueError(f"unknown margin loss {self.loss!r}; known: {', '.join(PRESETS)}, combined")
        base = PRESETS[self.loss]
        given = (self.m1, self.m2, self.m3)
        return tuple(g if g is not None else b for g, b in zip(given, base))


def margin_target(cos: torch.Tensor, m1: float, m2: float, m3: float) -> torch.Tensor:
    """ψ(m1·θ + m2) − m3 for cosines ``cos`` (any shape)."""
    theta = torch.acos(cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7))
    phi = m1 * theta + m2
    k = torch.floor(phi / math.pi)
    sign = 1.0 - 2.0 * torch.remainder(k, 2.0)
    return sign * torch.cos(phi) - 2.0 * k - m3


class MarginHead(nn.Module):
    """Cosine classifier with an additive/multiplicative margin on the target logit."""

    def __init__(self, embedding_size: int, num_classes: int, config: MarginConfig | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config or MarginConfig()
        self.m1, self.m2, self.m3 = self.config.margins()
        self.scale = self.config.scale
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        with torch.no_grad():
            self.weight.normal_(0.0, 0.01, generator=generator)

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    def cosines(self, embeddings: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """cos θ against every class, or only against the block ``rows`` of classes."""
        weight = self.weight if rows is None else self.weight[rows]
        return F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(weight.float(), dim=1))

    def logits(self, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """s·cos with the margin applied at column ``target[i]`` of row i."""
        rows = torch.arange(len(cos), device=cos.device)
        picked = cos[rows, target]
        out = cos.clone()
        out[rows, target] = margin_target(picked, self.m1, self.m2, self.m3)
        return out * self.scale

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.logits(self.cosines(embeddings), target)


def soft_margin_loss(
    head: MarginHead,
    embeddings: torch.Tensor,
    label: torch.Tensor,
    secondary: torch.Tensor,
    phi: torch.Tensor,
    columns: slice | None = None,
) -> torch.Tensor:
    """Mean over the batch of Σ_k weight_k · CE(margin applied to class k).

    Each image has (label, φ) and (secondary, 1 − φ); secondary −1 means none. ``columns``
    restricts the softmax to one block of classes (a domain's own classes under domain
    mixup); labels are then relative to that block.
    """
    cos = head.cosines(embeddings, columns)
    loss = phi * F.cross_entropy(head.logits(cos, label), label, reduction="none")
    # Always evaluated (weight 0 where unmixed): no data-dependent branch for torch.compile.
    mixed = secondary >= 0
    # Unmixed rows score class 0 at weight 0. (torch.where between two int64 index tensors
    # miscompiles in inductor's AVX2 code in torch 2.13: "index out of bounds".)
    other = secondary.clamp(min=0)
    weight = torch.where(mixed, 1.0 - phi, torch.zeros_like(phi))
    loss = loss + weight * F.cross_entropy(head.logits(cos, other), other, reduction="none")
    return loss.mean()
