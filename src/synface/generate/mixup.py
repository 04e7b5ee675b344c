"""Identity mixup (paper Eq. 2): α = φ·α1 + (1 − φ)·α2, soft label {η1: φ, η2: 1 − φ}.

α is the whole identity vector, shape and appearance coefficients alike, so a mixed identity
is one linear formula. At φ = 1 the result is exactly α1 (x·1 + y·0 is x in floating point)
and at φ = 0 exactly α2.
"""

from __future__ import annotations

import numpy as np

PHI_GRIDS = {
    "none": np.array([1.0]),
    "syn2": np.array([0.8]),
    "syn3": np.linspace(0.6, 1.0, 11),
    "full": np.linspace(0.0, 1.0, 21),
}


def mix_identities(alpha1: np.ndarray, alpha2: np.ndarray, phi: float | np.ndarray) -> np.ndarray:
    """φ·α1 + (1 − φ)·α2, broadcasting φ over the last axis."""
    phi = np.asarray(phi, dtype=np.float32)
    if phi.ndim == 1:
        phi = phi[:, None]
    if np.any((phi < 0) | (phi > 1)):
        raise ValueError("mixup ratio phi must lie in [0, 1]")
    return phi * np.asarray(alpha1, np.float32) + (np.float32(1.0) - phi) * np.asarray(alpha2, np.float32)


def phi_grid(name_or_values: str | list[float]) -> np.ndarray:
    if isinstance(name_or_values, str):
        try:
            return PHI_GRIDS[name_or_values]
        except KeyError:
            raise ValueError(f"unknown phi grid {name_or_values!r}; known: {', '.join(PHI_GRIDS)}") from None
    return np.asarray(name_or_values, dtype=np.float64)
