"""Preview grids: identities under varying pose / expression / light, and a mixup row."""

from __future__ import annotations

import numpy as np

from synface.facemodel.latents import Latents, SamplerConfig
from synface.generate.generator import FaceGenerator

COLUMN_GROUPS = (("pose",), ("expression",), ("illumination",))


def preview_grid(generator: FaceGenerator, num_identities: int = 4, per_group: int = 3, mixup_steps: int = 10) -> np.ndarray:
    """uint8 grid: one row per identity (canonical, then ``per_group`` images varying only
    pose, only expression, only light), then identity mixup φ = 0 → 1 between identities
    0 and 1 under canonical attributes (the paper's Fig. 4)."""
    rows = []
    canonical = SamplerConfig(vary=())
    for ident in range(num_identities):
        parts = [generator.latents([ident], [0], "preview", sampler=canonical)]
        for group in COLUMN_GROUPS:
            sampler = SamplerConfig(vary=group)
            parts.append(generator.latents([ident] * per_group, list(range(1, per_group + 1)), "preview", sampler=sampler))
        rows.append(generator.render(Latents.stack(parts)))
    width = 1 + per_group * len(COLUMN_GROUPS)
    phis = np.linspace(0.0, 1.0, mixup_steps)
    mixed = generator.mixed_identities([0] * len(phis), [1] * len(phis), phis, "preview")
    mix = generator.latents([0] * len(phis), [0] * len(phis), "preview", identity_vectors=mixed, sampler=canonical)
    mix_images = generator.render(mix)
    h, w = generator.size
    pad = np.full((max(0, width - len(phis)), h, w, 3), 255, np.uint8)
    rows.append(np.concatenate([mix_images[:width], pad])[:width])
    grid = np.stack(rows)  # (R, C, h, w, 3)
    return grid.transpose(0, 2, 1, 3, 4).reshape(len(rows) * h, width * w, 3)
