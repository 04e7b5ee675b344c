"""The generator's appearance modes (procedural, learned, both) and the learned basis they
need: ``ensure_basis`` builds the default one from celeba-299 on first use (explicitly,
with a progress bar), ``build_appearance`` turns a mode into the linear albedo model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from synface.errors import SynfaceError
from synface.facemodel.appearance import (
    NON_TEXTURE, SKIN, LinearAppearance, build_procedural_appearance, fill_uncovered, texel_surface, with_components,
)
from synface.facemodel.basis import DEFAULT_BASIS_FIT, LearnedBasis, basis_is_current, default_basis_path
from synface.facemodel.basis_builder import build_learned_appearance, luminance
from synface.facemodel.latents import truncated_normal
from synface.facemodel.model import FaceModel
from synface.paths import data_path

APPEARANCE_MODES = ("procedural", "learned", "both")
# How a new person's learned coefficients are drawn: "gaussian", N(0, scale²) per component;
# "blendK", a random convex blend of K of the basis's real people (Dirichlet(2) weights),
# renormalised to unit variance and times ``scale``. Independent Gaussian components mix
# traits that real faces keep apart (stubble with eye make-up, one skin tone's cheeks with
# another's brow): a blend stays near the people the basis was learned from.
# "real_people", a diagnostic, not a way to make new people: identity i wears the basis's real
# person i mod N's own coefficients (FaceGenerator.identity), so it shows how well real
# people's textures, through the same fit and renderer, teach a recogniser. Its draws are the
# Gaussian prior's, so every identity keeps the shape and hair it has under "gaussian".
REAL_PEOPLE_PRIOR = "real_people"
APPEARANCE_PRIORS = ("gaussian", "blend2", "blend3", REAL_PEOPLE_PRIOR)
DEFAULT_APPEARANCE_PRIOR = "gaussian"
# The default, chosen by LFW accuracy at equal training budget (reports/appearance_ab.md).
DEFAULT_APPEARANCE = "learned"
# What photos of faces cannot teach, kept from the procedural model in ``learned`` mode: hair
# (photos are cropped at the hairline) and eyes (gaze blurs the iris away), plus hair volume
# and shine, which are not texture.
LEARNED_KEEPS = ("hair_crown", "hair_mid", "hair_fringe", "hair_red", "hair_light", "hair_strands",
                 "iris_blue", "iris_light")


def ensure_basis(path: str | Path | None = None, model: FaceModel | None = None,
                 fit: str = DEFAULT_BASIS_FIT) -> Path:
    """The basis file to use: ``path`` as given (it must exist and match the mesh), or the
    default one for ``fit``, built from ``$SYNFACE_DATA/celeba-299`` on first use and rebuilt
    when the render mesh has changed since (~2-3 minutes on 2 cores, ~7 with landmarks68;
    cached)."""
    if path is not None:
        return Path(path)
    path = default_basis_path(fit)
    if path.is_file():
        model = model or FaceModel.load()
        if basis_is_current(path, model.render_mesh()):
            return path
        reason = "it was built for another render mesh or basis format"
    else:
        reason = "once; cached"
    real = data_path("celeba-299")  # a clear DataNotFoundError when the data is absent
    tqdm.write(f"building the learned appearance basis from {real} into {path} ({reason})")
    build_learned_appearance(real, path, model=model, fit=fit)
    return path


PHOTO_RESIDUAL = "photo_residual_"  # name prefix of the within-person residual components


def build_appearance(model: FaceModel, mode: str = "procedural", path: str | Path | None = None, scale: float = 1.0,
                     prior: str = DEFAULT_APPEARANCE_PRIOR, photo_residuals: bool = False,
                     fit: str = DEFAULT_BASIS_FIT, hairline: str = "low"):
    """The generator's appearance model for ``mode``:

    - ``procedural``: the hand-built basis of ``appearance.py``;
    - ``learned``: the learned skin texture (mean + PCA, coefficients ~ N(0, scale²)
      truncated at 2.5 scale) with the procedural hair, eyes, hair volume and shine;
    - ``both``: the learned skin texture with every procedural component on top (skin-tone
      shifts, brows, facial hair, tints...).

    ``prior`` (APPEARANCE_PRIORS) is how the learned coefficients are drawn. With
    ``photo_residuals`` the basis's within-person residual components come last (names
    ``photo_residual_i``, coefficient ~ N(0, 1) per photo); the identity prior leaves them at
    0, for the generator to set per image. ``hairline``: hair.py's HAIRLINE_STYLES."""
    if mode not in APPEARANCE_MODES:
        raise SynfaceError(f"unknown appearance mode {mode!r}; choose from {', '.join(APPEARANCE_MODES)}")
    check_appearance_prior(prior)
    if mode == "procedural" and prior != DEFAULT_APPEARANCE_PRIOR:
        raise SynfaceError(f"appearance prior {prior!r} draws learned coefficients; appearance mode "
                           f"'procedural' has none (use learned or both)")
    if mode == "procedural" and photo_residuals:
        raise SynfaceError("photo residuals are learned from photos; appearance mode 'procedural' has none "
                           "(use learned or both)")
    procedural = build_procedural_appearance(model, hairline=hairline)
    if mode == "procedural":
        return procedural
    mesh = model.render_mesh()
    learned = LearnedBasis.load(ensure_basis(path, model, fit), mesh, procedural.size)
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
    _, _, covered = texel_surface(mesh, procedural.size)

    def atlas_rows(rows: np.ndarray) -> np.ndarray:
        """Basis rows over the learned texels -> rows over the whole atlas, at the skin gain;
        uncovered texels copy their nearest covered one (bilinear sampling at island edges)."""
        out = np.zeros((len(rows), h * w, 3))
        out[:, learned.texels] = gain * rows.reshape(len(rows), -1, 3)
        return fill_uncovered(out.reshape(len(rows), h, w, 3), covered).reshape(len(rows), -1)

    mean = fill_uncovered(mean.reshape(h, w, 3), covered).reshape(-1, 3)
    learned_rows = atlas_rows(learned.basis)
    # Painted hair covers the learned skin, not the procedural one.
    procedural = build_procedural_appearance(model, base=mean, hairline=hairline)

    basis = np.concatenate([learned_rows, procedural.basis.numpy()[keep_index]])
    prior_procedural = procedural.prior
    draw_learned = learned_prior(prior, learned.train_coefficients, scale)

    def prior_of_one(rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([draw_learned(rng), prior_procedural(rng)[keep_index]]).astype(np.float32)

    appearance = LinearAppearance(
        mean=torch.from_numpy(mean.reshape(-1)),
        basis=torch.from_numpy(basis),
        names=[f"learned_{i}" for i in range(k)] + keep,
        size=procedural.size,
        skin_texels=procedural.skin_texels,
        prior=prior_of_one,
        people=learned.train_coefficients if prior == REAL_PEOPLE_PRIOR else None,
    )
    if photo_residuals:
        names = [f"{PHOTO_RESIDUAL}{i}" for i in range(len(learned.residual_basis))]
        appearance = with_components(appearance, names, atlas_rows(learned.residual_basis))
    return appearance


def check_appearance_prior(prior: str) -> None:
    if prior not in APPEARANCE_PRIORS:
        raise SynfaceError(f"unknown appearance prior {prior!r}; choose from {', '.join(APPEARANCE_PRIORS)}")


def learned_prior(prior: str, people: np.ndarray, scale: float) -> Callable[[np.random.Generator], np.ndarray]:
    """One new person's learned coefficients from ``rng``: see APPEARANCE_PRIORS. ``people``
    (N, K) are the basis's real identities' coefficients (unit variance per component)."""
    check_appearance_prior(prior)
    k = people.shape[1]
    if prior in ("gaussian", REAL_PEOPLE_PRIOR):
        return lambda rng: truncated_normal(rng, scale, 2.5 * scale, k)
    count = int(prior.removeprefix("blend"))
    if len(people) < count:
        raise SynfaceError(f"appearance prior {prior!r} blends {count} people; the basis has {len(people)}")
    people = np.asarray(people, np.float64)

    def blend(rng: np.random.Generator) -> np.ndarray:
        chosen = rng.choice(len(people), count, replace=False)
        weights = rng.dirichlet(np.full(count, 2.0))
        # Blending independent people shrinks the spread by sqrt(sum w^2): undo it, so that
        # ``scale`` means what it means for the Gaussian prior.
        return scale * (weights @ people[chosen]) / np.sqrt(np.sum(weights**2))

    return blend
