#!/usr/bin/env python
"""Are sampled learned identities new people, not copies of the real ones the basis came from?

(issue 9) The learned appearance basis is built from celeba-299. For ``--identities`` sampled
identities of the learned generator (one canonical image each: frontal, neutral, even light),
dlib's real-trained recogniser gives the distance to the nearest celeba-299 identity centroid
(mean descriptor of that person's photos). Goal: >= 0.6 (dlib's same-person threshold) for
>= 99 % of them. For scale, the same is measured for real celeba-299 photos against their own
and the nearest other centroid, and for real people who are certainly not in celeba-299: one
photo each of ``--lfw-people`` LFW people (the null reference of "a new person").

In texture space: the distance from each sampled identity's learned coefficients to the
nearest training identity's, against the nearest-neighbour distance between training
identities (both in the basis' texture units: coefficient differences weighted by the
components' standard deviations).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from common import write_result
from synface.errors import SynfaceError
from synface.evaluate.dlib_judge import DLIB_THRESHOLD, JUDGE_SIZE, DlibJudge
from synface.facemodel.latents import SamplerConfig
from synface.facemodel.basis import LearnedBasis, default_basis_path
from synface.facemodel.basis_builder import list_real_images
from synface.generate.generator import FaceGenerator, GeneratorConfig, image_keys
from synface.imageio import read_rgb
from synface.paths import cache_root, data_path


def landmark_box(points: np.ndarray) -> tuple[int, int, int, int]:
    """A dlib-sized face box around 5 landmarks (eyes, nose, mouth corners)."""
    centre = points.mean(0)
    eye = np.linalg.norm(points[1] - points[0])
    half = 1.1 * max(eye, 1.0)
    return (int(centre[0] - half), int(centre[1] - 1.1 * half), int(centre[0] + half), int(centre[1] + 0.9 * half))


def real_descriptors(judge: DlibJudge, real: Path) -> tuple[np.ndarray, np.ndarray]:
    table, _ = list_real_images(real)
    cache = cache_root() / "privacy" / "celeba-299-dlib.npz"
    if cache.is_file():
        with np.load(cache) as z:
            if len(z["names"]) == len(table):
                return z["descriptors"], z["names"]
    names, descs = [], []
    for rel in tqdm(sorted(table), desc="dlib on celeba-299", unit="img"):
        try:
            image = read_rgb(real / rel)
        except SynfaceError as exc:  # an unreadable image is skipped, not fatal
            tqdm.write(f"skipped {rel}: {exc}")
            continue
        descs.append(judge.describe(image, landmark_box(table[rel])))
        names.append(rel.split("/")[0])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, descriptors=np.stack(descs), names=np.array(names))
    return np.stack(descs), np.array(names)


def lfw_descriptors(judge: DlibJudge, people: int) -> np.ndarray:
    """dlib descriptors of the first photo of the first ``people`` LFW people (sorted by name)."""
    root = data_path("lfw", "images")
    descs = []
    for person in tqdm(sorted(p for p in root.iterdir() if p.is_dir())[:people], desc="dlib on LFW", unit="person"):
        image = read_rgb(sorted(person.glob("*.jpg"))[0])
        descs.append(judge.describe_frame(image)[0])
    return np.stack(descs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--appearance", default="learned")
    parser.add_argument("--appearance-scale", type=float, default=None, help="default: the generator's")
    parser.add_argument("--lfw-people", type=int, default=1000, help="0 skips the LFW reference")
    args = parser.parse_args()
    start = time.perf_counter()
    judge = DlibJudge()
    real = data_path("celeba-299")
    descs, names = real_descriptors(judge, real)
    people = sorted(set(names))
    centroids = np.stack([descs[names == p].mean(0) for p in people])
    own = np.array([people.index(n) for n in names])
    d_real = np.linalg.norm(descs[:, None] - centroids[None], axis=2)
    d_own = d_real[np.arange(len(descs)), own]
    d_real[np.arange(len(descs)), own] = np.inf
    d_other = d_real.min(1)

    config = GeneratorConfig(size=(JUDGE_SIZE, JUDGE_SIZE), appearance=args.appearance, sampler=SamplerConfig(vary=()))
    if args.appearance_scale is not None:
        config.appearance_scale = args.appearance_scale
    gen = FaceGenerator(config)
    rendered, coefficients = [], []
    for first in tqdm(range(0, args.identities, 64), desc="render + judge", unit="batch"):
        ids = list(range(first, min(first + 64, args.identities)))
        latents = gen.latents(ids, [0] * len(ids))
        faces = gen.render(latents, image_keys(ids, [0] * len(ids)))
        rendered += judge.describe_aligned(faces)
        coefficients.append(latents.appearance)
    rendered = np.stack(rendered)
    nearest = np.linalg.norm(rendered[:, None] - centroids[None], axis=2).min(1)

    result = {}
    if args.lfw_people:
        lfw = lfw_descriptors(judge, args.lfw_people)
        to_celeba = np.linalg.norm(lfw[:, None] - centroids[None], axis=2).min(1)
        result["real_lfw_people_reference"] = {
            "people": len(lfw), "share_at_least_0.6": float((to_celeba >= DLIB_THRESHOLD).mean()),
            "p1": float(np.percentile(to_celeba, 1)), "median": float(np.median(to_celeba)),
        }
    result.update({
        "appearance": args.appearance,
        "appearance_scale": gen.config.appearance_scale,
        "identities": args.identities,
        "dlib_nearest_centroid_distance": {
            "share_at_least_0.6": float((nearest >= DLIB_THRESHOLD).mean()),
            "min": float(nearest.min()), "p1": float(np.percentile(nearest, 1)), "median": float(np.median(nearest)),
        },
        "goal": "share_at_least_0.6 >= 0.99",
        "real_celeba_reference": {
            "own_centroid_median": float(np.median(d_own)),
            "nearest_other_centroid_median": float(np.median(d_other)),
            "share_own_below_0.6": float((d_own < DLIB_THRESHOLD).mean()),
            "share_nearest_other_at_least_0.6": float((d_other >= DLIB_THRESHOLD).mean()),
        },
    })
    if args.appearance in ("learned", "both"):
        basis = LearnedBasis.load(gen.config.appearance_path or default_basis_path(), gen.mesh, gen.appearance.size)
        k = len(basis.basis)
        std = np.sqrt(basis.variance.astype(np.float64))
        train = basis.train_coefficients.astype(np.float64) * std
        sampled = np.concatenate(coefficients)[:, :k].astype(np.float64) * std
        to_train = np.linalg.norm(sampled[:, None] - train[None], axis=2).min(1)
        between = np.linalg.norm(train[:, None] - train[None], axis=2)
        np.fill_diagonal(between, np.inf)
        nn_train = between.min(1)
        result["texture_space"] = {
            "components": k,
            "sampled_to_nearest_training_median": float(np.median(to_train)),
            "sampled_to_nearest_training_min": float(to_train.min()),
            "training_nearest_neighbour_median": float(np.median(nn_train)),
            "training_nearest_neighbour_min": float(nn_train.min()),
            "share_sampled_closer_than_training_min": float((to_train < nn_train.min()).mean()),
        }
    result["seconds"] = round(time.perf_counter() - start, 1)
    write_result(args.json, result)


if __name__ == "__main__":
    main()
