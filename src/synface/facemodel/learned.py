"""The generator's appearance modes (procedural, learned, both) and the learned basis they
need: ``ensure_basis`` builds the default one from celeba-299 on first use (explicitly,
with a progress bar), ``build_appearance`` turns a mode into the linear albedo model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from synface.errors import SynfaceError
from synface.facemodel.appearance import (
    NON_TEXTURE, SKIN, LinearAppearance, build_procedural_appearance, fill_uncovered, texel_surface,
)
from synface.facemodel.basis import LearnedBasis, basis_is_current, default_basis_path
from synface.facemodel.basis_builder import build_learned_appearance, luminance
from synface.facemodel.latents import truncated_normal
from synface.facemodel.model import FaceModel
from synface.paths import data_path

APPEARANCE_MODES = ("procedural", "learned", "both")
# The default, chosen by LFW accuracy at equal training budget (reports/appearance_ab.md).
DEFAULT_APPEARANCE = "learned"
# What photos of faces cannot teach, kept from the procedural model in ``learned`` mode: hair
# (photos are cropped at the hairline) and eyes (gaze blurs the iris away), plus hair volume
# and shine, which are not texture.
LEARNED_KEEPS = ("hair_crown", "hair_mid", "hair_fringe", "hair_red", "hair_light", "hair_strands",
                 "iris_blue", "iris_light")


def ensure_basis(path: str | Path | None = None, model: FaceModel | None = None) -> Path:
    """The basis file to use: ``path`` as given (it must exist and match the mesh), or the
    default one, built from ``$SYNFACE_DATA/celeba-299`` on first use and rebuilt when the
    render mesh has changed since (~2-3 minutes on 2 cores; cached)."""
    if path is not None:
        return Path(path)
    path = default_basis_path()
    if path.is_file():
        model = model or FaceModel.load()
        if basis_is_current(path, model.render_mesh()):
            return path
        reason = "it was built for another render mesh or basis format"
    else:
        reason = "once; cached"
    real = data_path("celeba-299")  # a clear DataNotFoundError when the data is absent
    tqdm.write(f"building the learned appearance basis from {real} into {path} ({reason})")
    build_learned_appearance(real, path, model=model)
    return path


def build_appearance(model: FaceModel, mode: str = "procedural", path: str | Path | None = None, scale: float = 1.0):
    """The generator's appearance model for ``mode``:

    - ``procedural``: the hand-built basis of ``appearance.py``;
    - ``learned``: the learned skin texture (mean + PCA, coefficients ~ N(0, scale²)
      truncated at 2.5 scale) with the procedural hair, eyes, hair volume and shine;
    - ``both``: the learned skin texture with every procedural component on top (skin-tone
      shifts, brows, facial hair, tints...)."""
    if mode not in APPEARANCE_MODES:
        raise SynfaceError(f"unknown appearance mode {mode!r}; choose from {', '.join(APPEARANCE_MODES)}")
    procedural = build_procedural_appearance(model)
    if mode == "procedural":
        return procedural
    mesh = model.render_mesh()
    learned = LearnedBasis.load(ensure_basis(path, model), mesh, procedural.size)
    keep = list(LEARNED_KEEPS + NON_TEXTURE) if mode == "learned" else list(procedural.names)
    keep_index = [procedural.names.index(n) for n in keep]
    k = len(learned.basis)
    h, w = procedural.size

    # Photos put skin at a higher level than the procedural albedo (their exposure is baked
    # in); left so, a third of the texels clamp at white. The learned texture is rescaled so
    # that its mean skin has the procedural skin's luminance: relative differences (skin tone)
    # stay, and the renderer's auto-exposure sets the final brightness.
    learned_skin = learned.mean.reshape(-1, 3)[np.isin(learned.texels, procedural.skin_texels)]
    gain = float(luminance(SKIN) / luminance(learned_skin.mean(0)))
    mean = procedural.mean.numpy().reshape(-1, 3).copy()
    mean[learned.texels] = gain * learned.mean.reshape(-1, 3)
    learned_rows = np.zeros((k, h * w, 3))
    learned_rows[:, learned.texels] = gain * learned.basis.reshape(k, -1, 3)
    # Uncovered texels copy their nearest covered one (bilinear sampling at island edges).
    _, _, covered = texel_surface(mesh, procedural.size)
    mean = fill_uncovered(mean.reshape(h, w, 3), covered).reshape(-1, 3)
    learned_rows = fill_uncovered(learned_rows.reshape(k, h, w, 3), covered).reshape(k, -1, 3)
    # Painted hair covers the learned skin, not the procedural one.
    procedural = build_procedural_appearance(model, base=mean)

    basis = np.concatenate([learned_rows.reshape(k, -1), procedural.basis.numpy()[keep_index]])
    prior_procedural = procedural.prior

    def prior(rng: np.random.Generator) -> np.ndarray:
        learned_part = truncated_normal(rng, scale, 2.5 * scale, k)
        return np.concatenate([learned_part, prior_procedural(rng)[keep_index]]).astype(np.float32)

    return LinearAppearance(
        mean=torch.from_numpy(mean.reshape(-1)),
        basis=torch.from_numpy(basis),
        names=[f"learned_{i}" for i in range(k)] + keep,
        size=procedural.size,
        skin_texels=procedural.skin_texels,
        prior=prior,
    )
