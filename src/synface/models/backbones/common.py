"""Shared pieces of the backbones."""

from __future__ import annotations

import math


def downsampled(size: tuple[int, int], times: int) -> tuple[int, int]:
    """Feature-map size after ``times`` stride-2 convolutions with 'same' padding (ceil(n/2))."""
    h, w = size
    for _ in range(times):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w
