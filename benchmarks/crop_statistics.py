#!/usr/bin/env python
"""How do aligned renders differ from aligned photos, as images? (issue 18, a probe)

Statistics of the inner face (faces/templates.py: inner_face_mask, brows to chin) of
``--images`` aligned 112x96 crops each from a generated dataset, the celeba-299 photos and
the LFW photos: luminance contrast (std / mean), saturation (max - min channel), and the
luminance energy of four spatial bands (difference of Gaussians, std / mean), which is how
sharply eyes, brows, nostrils and lips stand out. A row for the dataset after the training
augmentation's detail boost (train/augment.py: RandomDetailBoost at its default ranges, applied at the
network's 56x48 input as in training, then compared at that size) shows how far it moves them, and
one after its desaturation (RandomDesaturate at its default range) how far that moves the colour.

    python benchmarks/crop_statistics.py --dataset data/ab/demo-aefb0549108d \\
        --json runs/bench/crop_statistics.json

LFW is only looked at here, never fitted: the boost's and the desaturation's ranges were set from
celeba-299.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from synface.datasets.storage import read_dataset_info
from synface.evaluate.pairs import load_benchmark
from synface.faces.landmarks import read_landmarks
from synface.faces.pipeline import aligned_crops
from synface.faces.templates import inner_face_mask
from synface.paths import data_path
from synface.train.augment import RandomDesaturate, RandomDetailBoost, augment
from synface.train.config import AugmentConfig

from common import write_result

BANDS = ((0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0))  # Gaussian sigmas, pixels of a 112x96 crop


def inner_face_statistics(crops: np.ndarray) -> dict:
    """Medians over ``crops`` (N, h, w, 3 uint8) of the inner face's statistics; band sigmas
    scale with the crop height."""
    h, w = crops.shape[1:3]
    mask = inner_face_mask((h, w))
    scale = h / 112
    images = crops.astype(np.float32) / 255
    lum = images.mean(-1)
    saturation = images.max(-1) - images.min(-1)
    out = {"contrast": float(np.median([x[mask].std() / x[mask].mean() for x in lum])),
           "saturation": float(np.median([s[mask].mean() for s in saturation]))}
    for lo, hi in BANDS:
        energy = [(gaussian_filter(x, lo * scale) - gaussian_filter(x, hi * scale))[mask].std() / x[mask].mean()
                  for x in lum]
        out[f"band_{lo:g}-{hi:g}px"] = float(np.median(energy))
    return {k: round(v, 4) for k, v in out.items()}


def dataset_crops(root: Path, count: int, rng: np.random.Generator) -> np.ndarray:
    info = read_dataset_info(root)
    shards = sorted((root / "shards").glob("shard-*[0-9].npy"))
    if not shards:
        raise FileNotFoundError(f"no shards under {root / 'shards'} ({info.get('name')})")
    crops = np.concatenate([np.load(p, mmap_mode="r") for p in shards[:4]])
    return np.asarray(crops[np.sort(rng.choice(len(crops), min(count, len(crops)), replace=False))])


def photo_crops(root: Path, paths: list[str], landmarks: Path, count: int, rng: np.random.Generator) -> np.ndarray:
    crops, _ = aligned_crops(root, paths, (112, 96), landmarks, desc=f"align {root.name}")
    return np.asarray(crops[np.sort(rng.choice(len(crops), min(count, len(crops)), replace=False))])


def at_input_size(crops: np.ndarray, size: tuple[int, int] = (56, 48)) -> torch.Tensor:
    """Uint8 crops (N, h, w, 3) brought to the network's input size as training does, as
    float (N, 3, h, w) in [0, 1]."""
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    return torch.nn.functional.interpolate(x, size=size, mode="area")


def as_uint8(images: torch.Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def with_each_matching_augmentation(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``images`` after each augmentation made to close a measured difference, applied to
    every image at its default range."""
    config = AugmentConfig()
    changes = {"detail_boost": RandomDetailBoost(config.detail_sigma, config.detail_amount, p=1.0),
               "desaturate": RandomDesaturate(config.desaturate_factor, p=1.0)}
    return {name: augment(module, images.clone(), 0) for name, module in changes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="A generated dataset folder.")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--json", type=Path, default=Path("runs/bench/crop_statistics.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    celeba = data_path("celeba-299")
    lfw = load_benchmark("lfw")
    sets = {
        "renders": dataset_crops(args.dataset, args.images, rng),
        "celeba-299": photo_crops(celeba, sorted(read_landmarks(celeba / "landmarks.txt")), celeba / "landmarks.txt",
                                  args.images, rng),
        "lfw": photo_crops(lfw.image_root, lfw.images, lfw.landmarks_file, args.images, rng),
    }
    rows = {name: inner_face_statistics(crops) for name, crops in sets.items()}
    renders = at_input_size(sets["renders"])
    rows["renders_56x48"] = inner_face_statistics(as_uint8(renders))
    for name, changed in with_each_matching_augmentation(renders).items():
        rows[f"renders_56x48_{name}"] = inner_face_statistics(as_uint8(changed))
    rows["celeba-299_56x48"] = inner_face_statistics(as_uint8(at_input_size(sets["celeba-299"])))
    write_result(args.json, {"dataset": str(args.dataset), "images": args.images, "rows": rows})


if __name__ == "__main__":
    main()
