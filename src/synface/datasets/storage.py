"""On-disk dataset format: memory-mappable uint8 image shards, per-shard metadata, a manifest.

One dataset directory::

    dataset.json            written last: the dataset is complete when it exists
    spec.yaml               the resolved spec (synthetic) — identical in every part of a split run
    manifest.csv            one row per image: storage location, labels, phi, latent summary
    shards/shard-00000.npy       (n, H, W, 3) uint8 images, memory-mapped by readers
    shards/shard-00000.meta.npy  structured array: labels, phi and every latent vector
    shards/shard-00000.json      done-marker: counts, byte sizes and CRC-32 of both files

Shards are written to a temporary name and renamed, marker last, so a killed run leaves
either a whole shard or nothing; no file holds a timestamp, so equal inputs give equal bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from synface.errors import DataNotFoundError, SynfaceError
from synface.paths import atomic_file

FORMAT_VERSION = 1


class CorruptShardError(SynfaceError):
    """A shard file whose size or checksum does not match its marker."""


def meta_dtype(num_shape: int, num_appearance: int, num_expression: int) -> np.dtype:
    return np.dtype(
        [
            ("label", "<i8"),
            ("identity", "<i8"),
            ("sample", "<i8"),
            ("secondary", "<i8"),
            ("phi", "<f4"),
            ("shape", "<f4", (num_shape,)),
            ("appearance", "<f4", (num_appearance,)),
            ("expression", "<f4", (num_expression,)),
            ("illumination", "<f4", (27,)),
            ("pose", "<f4", (3,)),
            ("camera_distance", "<f4"),
            ("background", "<f4", (8,)),
        ]
    )


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def shard_files(root: Path, index: int) -> dict[str, Path]:
    base = Path(root) / "shards" / shard_name(index)
    return {"images": base.with_suffix(".npy"), "meta": Path(f"{base}.meta.npy"), "marker": base.with_suffix(".json")}


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def write_shard(root: Path, index: int, images: np.ndarray, meta: np.ndarray) -> None:
    """Write one shard atomically: images, then metadata, then the marker that vouches for both."""
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(meta):
        raise ValueError("images must be (n, H, W, 3) uint8 with one metadata row each")
    files = shard_files(root, index)
    files["images"].parent.mkdir(parents=True, exist_ok=True)
    image_bytes, meta_bytes = _npy_bytes(np.ascontiguousarray(images)), _npy_bytes(meta)
    _atomic_write(files["images"], image_bytes)
    _atomic_write(files["meta"], meta_bytes)
    marker = {
        "shard": index,
        "count": len(images),
        "image_shape": list(images.shape[1:]),
        "images_bytes": len(image_bytes),
        "images_crc32": zlib.crc32(image_bytes),
        "meta_bytes": len(meta_bytes),
        "meta_crc32": zlib.crc32(meta_bytes),
    }
    _atomic_write(files["marker"], (json.dumps(marker, sort_keys=True) + "\n").encode())


def read_marker(root: Path, index: int) -> dict | None:
    path = shard_files(root, index)["marker"]
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise CorruptShardError(f"{path}: unreadable shard marker") from None


def shard_complete(root: Path, index: int) -> bool:
    """Marker present and both files of the size it records (a cheap check for resuming)."""
    marker = read_marker(root, index)
    if marker is None:
        return False
    files = shard_files(root, index)
    return all(
        files[k].is_file() and files[k].stat().st_size == marker[f"{k}_bytes"] for k in ("images", "meta")
    )


def _file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


NOT_WRITTEN = "not written (no marker)"  # the problem of a shard a run has not reached yet


def shard_problem(root: Path, index: int) -> str | None:
    """What is wrong with a shard (no marker, a missing, resized or corrupt file), or None
    when its marker vouches for both files: sizes and CRC-32s (reads the whole shard)."""
    try:
        marker = read_marker(root, index)
    except CorruptShardError as exc:
        return str(exc)
    if marker is None:
        return NOT_WRITTEN
    files = shard_files(root, index)
    for key in ("images", "meta"):
        path = files[key]
        if not path.is_file():
            return f"{path.name} missing"
        if path.stat().st_size != marker[f"{key}_bytes"]:
            return f"{path.name} has {path.stat().st_size} bytes, its marker says {marker[f'{key}_bytes']}"
        if _file_crc(path) != marker[f"{key}_crc32"]:
            return f"{path.name} fails its CRC-32 check"
    return None


def shard_intact(root: Path, index: int) -> bool:
    return shard_problem(root, index) is None


def verify_dataset(root: str | Path) -> dict:
    """Check every shard of a dataset folder against its marker: {"shards", "damaged":
    [(index, problem)], "complete"} (complete: dataset.json present)."""
    root = Path(root)
    info = read_dataset_info(root) if (root / "dataset.json").is_file() else None
    if info is not None:
        count = int(info["num_shards"])
    else:
        folder = root / "shards"
        if not folder.is_dir():
            raise DataNotFoundError(f"not a synface dataset (no dataset.json, no shards/): {root}")
        count = 1 + max((int(p.name[6:11]) for p in folder.glob("shard-?????.json")), default=-1)
    damaged = [(k, why) for k in range(count) if (why := shard_problem(root, k)) is not None]
    return {"shards": count, "damaged": damaged, "complete": info is not None}


def remove_partial_files(root: Path) -> int:
    """Delete leftovers of a killed run (``*.tmp``); returns how many."""
    folder = Path(root) / "shards"
    leftovers = list(folder.glob("*.tmp")) if folder.is_dir() else []
    for path in leftovers:
        path.unlink()
    return len(leftovers)


def verify_file(path: Path, expected_bytes: int, expected_crc: int, what: str) -> bytes:
    if not path.is_file():
        raise CorruptShardError(f"{what} missing: {path}")
    data = path.read_bytes()
    if len(data) != expected_bytes:
        raise CorruptShardError(f"{what} truncated or padded: {path} has {len(data)} bytes, marker says {expected_bytes}")
    if zlib.crc32(data) != expected_crc:
        raise CorruptShardError(f"{what} corrupt: {path} fails its CRC-32 check")
    return data


def load_shard_meta(root: Path, index: int) -> np.ndarray:
    marker = read_marker(root, index)
    if marker is None:
        raise CorruptShardError(f"shard {shard_name(index)} of {root} has no marker (unfinished?)")
    data = verify_file(shard_files(root, index)["meta"], marker["meta_bytes"], marker["meta_crc32"], "shard metadata")
    return np.load(io.BytesIO(data), allow_pickle=False)


# ---- whole datasets ------------------------------------------------------------------------


def write_dataset_info(root: Path, info: dict, manifest_rows: Iterable[dict]) -> None:
    """Finish a dataset: manifest first (streamed: 500K rows never sit in memory as dicts),
    ``dataset.json`` (the completion mark) last."""
    root = Path(root)
    rows = iter(manifest_rows)
    first = next(rows, None)
    if first is not None:
        with atomic_file(root / "manifest.csv", "w", kept="the shards are intact; rerun to finish the dataset") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(first), lineterminator="\n")
            writer.writeheader()
            writer.writerow(first)
            writer.writerows(rows)
    info = {"format": FORMAT_VERSION, **info}
    _atomic_write(root / "dataset.json", (json.dumps(info, indent=1, sort_keys=True) + "\n").encode())


def read_dataset_info(root: Path) -> dict:
    path = Path(root) / "dataset.json"
    if not path.is_file():
        if (Path(root) / "shards").is_dir():
            raise SynfaceError(f"{root}: dataset is unfinished (no dataset.json); rerun generate to resume it")
        raise DataNotFoundError(f"not a synface dataset (no dataset.json): {root}")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SynfaceError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
        info = info if isinstance(info, dict) else {}
        raise SynfaceError(f"{path}: dataset format {info.get('format')} is not {FORMAT_VERSION}")
    missing = [k for k in ("kind", "num_images", "num_classes", "num_shards", "size") if k not in info]
    if missing:
        raise SynfaceError(f"{path}: missing {', '.join(missing)}")
    return info


@dataclass
class SoftLabels:
    """Each image's (class, weight) pairs: primary with ``phi``, secondary with 1 - phi."""

    label: torch.Tensor  # (B,) int64
    secondary: torch.Tensor  # (B,) int64, -1 where phi = 1
    phi: torch.Tensor  # (B,) float32

    def to(self, device, non_blocking: bool = False) -> SoftLabels:
        return SoftLabels(*(t.to(device, non_blocking=non_blocking) for t in (self.label, self.secondary, self.phi)))

    def offset(self, classes: int) -> SoftLabels:
        """Shift class indices (real classes follow synthetic ones in one classifier)."""
        secondary = torch.where(self.secondary >= 0, self.secondary + classes, self.secondary)
        return SoftLabels(self.label + classes, secondary, self.phi)


class ShardedDataset(Dataset):
    """A dataset directory as (image, soft label) items; images are uint8 CHW tensors.

    Batched reads (``__getitems__``, used by ``DataLoader``) gather rows straight from the
    memory-mapped shards and return one uint8 batch in channels-last layout. Each shard's
    size is checked when opened and, with ``verify``, its CRC on first use: a truncated or
    corrupt shard raises :class:`CorruptShardError` naming the file.
    """

    def __init__(self, root: str | Path, verify: bool = True) -> None:
        self.root = Path(root)
        self.info = read_dataset_info(self.root)
        self.verify = verify
        metas = [load_shard_meta(self.root, k) for k in range(self.info["num_shards"])]
        self.shard_sizes = np.array([len(m) for m in metas], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        meta = np.concatenate(metas) if metas else np.zeros(0)
        if len(meta) != self.info["num_images"]:
            raise CorruptShardError(f"{self.root}: shards hold {len(meta)} images, dataset.json says {self.info['num_images']}")
        self.labels = np.ascontiguousarray(meta["label"])
        self.secondary = np.ascontiguousarray(meta["secondary"])
        self.phi = np.ascontiguousarray(meta["phi"])
        self.meta = meta
        self._maps: dict[int, np.ndarray] = {}

    @property
    def num_classes(self) -> int:
        return int(self.info["num_classes"])

    @property
    def signature(self) -> str:
        """What the dataset holds, in 16 hex digits: a hash of dataset.json and every shard's
        marker (their sizes and CRC-32s), so equal data gives equal signatures wherever the
        folder lives, and any other data (or a re-rendered shard) another."""
        digest = hashlib.sha1((self.root / "dataset.json").read_bytes())
        for k in range(self.info["num_shards"]):
            digest.update(shard_files(self.root, k)["marker"].read_bytes())
        return digest.hexdigest()[:16]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.info["size"])

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict:
        # Memory maps are reopened in each DataLoader worker, never pickled.
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def shard_images(self, index: int) -> np.ndarray:
        if index not in self._maps:
            self._maps[index] = self._open_shard(index)
        return self._maps[index]

    def _open_shard(self, index: int) -> np.ndarray:
        marker = read_marker(self.root, index)
        path = shard_files(self.root, index)["images"]
        if marker is None:
            raise CorruptShardError(f"shard marker missing for {path}")
        if not path.is_file():
            raise CorruptShardError(f"shard missing: {path}")
        if path.stat().st_size != marker["images_bytes"]:
            raise CorruptShardError(
                f"shard truncated or padded: {path} has {path.stat().st_size} bytes, marker says {marker['images_bytes']}"
            )
        if self.verify:
            if _file_crc(path) != marker["images_crc32"]:
                raise CorruptShardError(f"shard corrupt: {path} fails its CRC-32 check")
        try:
            return np.load(path, mmap_mode="r")
        except ValueError as exc:
            raise CorruptShardError(f"shard unreadable: {path} ({exc})") from None

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shards = np.searchsorted(self.starts, indices, side="right") - 1
        return shards, indices - self.starts[shards]

    def images(self, indices) -> np.ndarray:
        """uint8 (B, H, W, 3) for dataset indices, gathered shard by shard."""
        indices = np.asarray(indices, np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} images")
        shards, rows = self.locate(indices)
        out = np.empty((len(indices), *self.image_size, 3), np.uint8)
        for shard in np.unique(shards):
            mask = shards == shard
            out[mask] = self.shard_images(int(shard))[rows[mask]]
        return out

    def soft_labels(self, indices) -> SoftLabels:
        indices = np.asarray(indices, np.int64)
        return SoftLabels(
            torch.from_numpy(self.labels[indices]), torch.from_numpy(self.secondary[indices]), torch.from_numpy(self.phi[indices])
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, tuple[int, int, float]]:
        image = torch.from_numpy(self.images([index])[0]).permute(2, 0, 1)
        return image, (int(self.labels[index]), int(self.secondary[index]), float(self.phi[index]))

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, SoftLabels]:
        batch = torch.from_numpy(self.images(indices)).permute(0, 3, 1, 2)  # channels-last memory
        return batch, self.soft_labels(indices)


def collate_batch(batch):
    """``DataLoader`` collate for :class:`ShardedDataset`: batches arrive already gathered."""
    return batch
