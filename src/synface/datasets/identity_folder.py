"""Real identity-folder datasets (``<identity>/<image>``), e.g. celeba-299, as aligned crops."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from synface.errors import DataNotFoundError, SynfaceError
from synface.faces.landmarks import find_landmark_file
from synface.faces.pipeline import IMAGE_SUFFIXES, aligned_crops
from synface.faces.templates import parse_size


@dataclass
class IdentityFolder:
    root: Path
    classes: list[str]  # folder names; label i is classes[i]
    images: list[str]  # relative paths
    labels: np.ndarray  # (N,) int64
    landmarks_file: Path | None


def scan_identity_folder(root: str | Path, min_images: int = 1) -> IdentityFolder:
    """List ``root/<identity>/<image>``; identities with fewer than ``min_images`` are left out."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"identity folder not found: {root}")
    classes, images, labels = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < min_images:
            continue
        label = len(classes)
        classes.append(folder.name)
        images += [f"{folder.name}/{name}" for name in files]
        labels += [label] * len(files)
    if not classes:
        raise SynfaceError(f"{root}: no identity sub-folders with at least {min_images} images")
    return IdentityFolder(root, classes, images, np.array(labels, dtype=np.int64), find_landmark_file(root))


class AlignedIdentityDataset(Dataset):
    """(crop, label) pairs: crop is a uint8 CHW tensor; normalise on the batch, on device."""

    def __init__(
        self, folder: IdentityFolder, size: str | tuple[int, int] = (112, 96), grayscale: bool = False
    ) -> None:
        self.folder = folder
        self.size = parse_size(size)
        self.crops, self.alignment = aligned_crops(
            folder.root, folder.images, self.size, folder.landmarks_file, grayscale, desc=f"align {folder.root.name}"
        )

    @property
    def num_classes(self) -> int:
        return len(self.folder.classes)

    def __len__(self) -> int:
        return len(self.folder.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        crop = torch.from_numpy(np.ascontiguousarray(self.crops[index])).permute(2, 0, 1)
        return crop, int(self.folder.labels[index])
