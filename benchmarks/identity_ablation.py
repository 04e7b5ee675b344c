#!/usr/bin/env python
"""Where does generated identity come from, and how far can this generator go? (issue 9)

The learned (default) generator, judged by dlib's real-trained ResNet as in
``identity_separability.py`` (``intra``, ``inter``, ``far_at_0.6``, ``verification_accuracy``),
with one part of the identity taken away or changed at a time:

- ``default``: as the generator samples people;
- ``same_hair`` / ``bald``: every identity with identity 0's hair / with no hair (colour and volume);
- ``mean_shape`` / ``mean_texture``: every identity with the model's mean shape / the learned mean skin;
- ``celeba_textures``: each identity wears a real celeba-299 person's fitted texture (that
  person's own coefficients in the basis) instead of a sampled one: the bound on what
  sampling the basis better could give, since real people through the same fit and renderer
  are no more distinct than this;
- ``celeba_people``: as ``celeba_textures``, and with that person's own fitted shape too (a
  basis built with ``--fit landmarks68`` only): real people re-rendered as closely as this
  face model and renderer can;
- ``wider_*``: a wider prior (texture spread x2 / shape spread x1.5, both), i.e. caricatures.

``--fit landmarks68`` judges the generator on the basis whose photos were unwrapped onto each
person's own shape fitted to 68 landmarks (``synface appearance build --fit landmarks68``).

Identities are the same in every row (same seeds), so differences between rows are paired.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from common import write_result
from synface.evaluate.dlib_judge import JUDGE_SIZE, pair_figures
from synface.evaluate.dlib_judge import DlibJudge
from synface.facemodel.appearance import HAIR_BANDS
from synface.facemodel.hair import HAIR_GEOMETRY
from synface.facemodel.latents import Latents
from synface.facemodel.basis import BASIS_FITS, DEFAULT_BASIS_FIT, LearnedBasis, default_basis_path
from synface.generate.generator import FaceGenerator, GeneratorConfig, image_keys

Edit = Callable[[FaceGenerator, Latents, np.ndarray], None]  # (generator, latents, identity of each row)


def learned_columns(gen: FaceGenerator) -> list[int]:
    return [i for i, n in enumerate(gen.appearance.names) if n.startswith("learned_")]


def hair_columns(gen: FaceGenerator) -> list[int]:
    return [i for i, n in enumerate(gen.appearance.names) if n.startswith("hair")]


def same_hair(gen: FaceGenerator, lat: Latents, ids: np.ndarray) -> None:
    cols = hair_columns(gen)
    lat.appearance[:, cols] = gen.identity(0)[1][cols]


def bald(gen: FaceGenerator, lat: Latents, ids: np.ndarray) -> None:
    cols = [gen.appearance.names.index(n) for n in (*HAIR_BANDS, *HAIR_GEOMETRY)]
    lat.appearance[:, cols] = 0.0


def mean_shape(gen: FaceGenerator, lat: Latents, ids: np.ndarray) -> None:
    lat.shape[:] = 0.0


def mean_texture(gen: FaceGenerator, lat: Latents, ids: np.ndarray) -> None:
    lat.appearance[:, learned_columns(gen)] = 0.0


@functools.cache
def real_people(gen: FaceGenerator) -> LearnedBasis:
    """``gen``'s learned basis, with the celeba-299 people's own coefficients (read once)."""
    path = gen.config.appearance_path or default_basis_path(gen.config.appearance_fit)
    return LearnedBasis.load(path, gen.mesh, gen.appearance.size)


def celeba_textures(gen: FaceGenerator, lat: Latents, ids: np.ndarray) -> None:
    real = real_people(gen).train_coefficients
    lat.appearance[:, learned_columns(gen)] = real[ids % len(real)]


def celeba_people(gen: FaceGenerator, lat: Latents, ids: np.ndarray) -> None:
    celeba_textures(gen, lat, ids)
    shapes = real_people(gen).train_shapes
    if shapes is None:
        raise SystemExit("celeba_people needs a basis with fitted shapes: use --fit landmarks68")
    lat.shape[:] = shapes[ids % len(shapes)]


def judge_generator(judge: DlibJudge, config: GeneratorConfig, identities: int, images: int, edit: Edit | None,
                    label: str) -> dict:
    gen = FaceGenerator(config)
    ids = np.repeat(np.arange(identities), images)
    samples = np.tile(np.arange(images), identities)
    descs = []
    for start in tqdm(range(0, len(ids), 64), desc=label, unit="batch", leave=False):
        i, s = ids[start : start + 64], samples[start : start + 64]
        latents = gen.latents(list(i), list(s))
        if edit is not None:
            edit(gen, latents, i)
        faces = gen.render(latents, image_keys(i, s))
        descs += judge.describe_aligned(faces)
    return pair_figures(np.stack(descs), ids, np.random.default_rng(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--fit", default=DEFAULT_BASIS_FIT, choices=BASIS_FITS,
                        help="which cached basis the generator uses (synface appearance build --fit)")
    parser.add_argument("--rows", default=None, help="comma-separated rows to judge (default: all that apply)")
    args = parser.parse_args()
    judge = DlibJudge()
    base = GeneratorConfig(size=(JUDGE_SIZE, JUDGE_SIZE), appearance="learned", appearance_fit=args.fit)
    wider_shape = replace(base.sampler, shape_scale=1.5 * base.sampler.shape_scale)
    rows: dict[str, tuple[GeneratorConfig, Edit | None]] = {
        "default": (base, None),
        "same_hair": (base, same_hair),
        "bald": (base, bald),
        "mean_shape": (base, mean_shape),
        "mean_texture": (base, mean_texture),
        "celeba_textures": (replace(base, appearance_scale=1.0), celeba_textures),
        "celeba_people": (replace(base, appearance_scale=1.0), celeba_people),
        "wider_texture_x2": (replace(base, appearance_scale=2 * base.appearance_scale), None),
        "wider_shape_x1.5": (replace(base, sampler=wider_shape), None),
        "wider_both": (replace(base, appearance_scale=2 * base.appearance_scale, sampler=wider_shape), None),
    }
    if args.fit == DEFAULT_BASIS_FIT:
        rows.pop("celeba_people")  # a landmarks5 basis has no fitted shapes
    if args.rows:
        wanted = [r.strip() for r in args.rows.split(",")]
        unknown = [r for r in wanted if r not in rows]
        if unknown:
            parser.error(f"unknown rows {', '.join(unknown)}; choose from {', '.join(rows)}")
        rows = {r: rows[r] for r in wanted}
    start = time.perf_counter()
    result = {"identities": args.identities, "images_per_identity": args.images, "fit": args.fit,
              "appearance_scale": base.appearance_scale, "shape_scale": base.sampler.shape_scale}
    for name, (config, edit) in tqdm(rows.items(), desc="ablation", unit="row"):
        result[name] = judge_generator(judge, config, args.identities, args.images, edit, name)
        f = result[name]
        tqdm.write(f"{name:18s} intra {f['intra']:.3f}  inter {f['inter']:.3f}  "
                   f"far@0.6 {100 * f['far_at_0.6']:5.1f} %  verification {100 * f['verification_accuracy']:.1f} %")
    result["seconds"] = round(time.perf_counter() - start, 1)
    write_result(args.json, result)


if __name__ == "__main__":
    main()
