"""Real identity folders (``<person>/<image>``, e.g. celeba-299) or insightface training
folders (``train.rec`` / ``train.idx``) in the synthetic storage format, so real and synthetic
data go through one loader (domain mixup, real-only runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from synface.datasets.identity_folder import scan_identity_folder
from synface.datasets.recordio import is_insightface_folder, read_insightface
from synface.datasets.storage import meta_dtype, write_dataset_info, write_shard
from synface.errors import SynfaceError
from synface.faces.align import from_arcface_112
from synface.faces.pipeline import aligned_crops
from synface.faces.templates import parse_size
from synface.locks import folder_lock


def import_identity_folder(
    src: str | Path,
    out: str | Path,
    size: str | tuple[int, int] = (112, 96),
    grayscale: bool = False,
    min_images: int = 1,
    max_identities: int | None = None,
    max_per_identity: int | None = None,
    shard_size: int = 1000,
) -> dict:
    """Align every image (landmark file if present, else MTCNN) and store it with its class.

    ``max_identities`` / ``max_per_identity`` take the first N people / images (sorted), as
    the paper's "first 2K identities" subsets do.
    """
    out = Path(out)
    if (out / "dataset.json").exists():
        raise SynfaceError(f"{out} already holds a dataset; delete it or choose another --out")
    if is_insightface_folder(src):
        with folder_lock(out, "the imported shards"):
            return _import_insightface(Path(src), out, size, grayscale, min_images, max_identities, max_per_identity,
                                       shard_size)
    folder = scan_identity_folder(src, min_images=min_images)
    with folder_lock(out, "the imported shards"):
        return _import(folder, src, out, size, grayscale, max_identities, max_per_identity, shard_size)


def _import_insightface(src: Path, out: Path, size, grayscale, min_images, max_identities, max_per_identity,
                        shard_size) -> dict:
    """An insightface training folder (train.rec / train.idx): its 112x112 crops re-aligned to
    our template at ``size``."""
    crops, labels = read_insightface(src)
    counts = np.bincount(labels)
    keep = counts[labels] >= min_images
    crops, labels = crops[keep], labels[keep]
    order = np.argsort(labels, kind="stable")
    crops, labels = crops[order], labels[order]
    chosen = _subset(labels, max_identities, max_per_identity)
    crops, labels = crops[chosen], labels[chosen]
    classes = [f"{c}" for c in np.unique(labels)]
    labels = np.searchsorted(np.unique(labels), labels)
    h, w = parse_size(size)
    aligned = from_arcface_112(crops, (h, w), grayscale)
    sources = [f"train.rec#{i}" for i in range(len(labels))]
    return _write_real(out, src, aligned, labels, classes, sources, (h, w), grayscale,
                       {"insightface_rec": len(labels)}, [], shard_size)


def _import(folder, src, out: Path, size, grayscale, max_identities, max_per_identity, shard_size) -> dict:
    keep = _subset(folder.labels, max_identities, max_per_identity)
    paths = [folder.images[i] for i in keep]
    labels = folder.labels[keep]
    classes = [folder.classes[c] for c in np.unique(labels)]
    labels = np.searchsorted(np.unique(labels), labels)  # renumber 0..C-1
    h, w = parse_size(size)
    # An unreadable photo is skipped and listed, as `align` does, not the end of the import.
    crops, counts = aligned_crops(folder.root, paths, (h, w), folder.landmarks_file, grayscale,
                                  desc=f"align {folder.root.name}", strict=False)
    skipped = counts.pop("skipped_images", [])
    if skipped:
        unreadable = {rel for rel, _ in skipped}
        keep_rows = np.array([p not in unreadable for p in paths])
        paths = [p for p, k in zip(paths, keep_rows) if k]
        labels = labels[keep_rows]
        for rel, why in skipped:
            tqdm.write(f"skipped {rel}: {why}")
        if not paths:
            raise SynfaceError(f"{folder.root}: no readable image")
    classes = [classes[c] for c in np.unique(labels)]
    labels = np.searchsorted(np.unique(labels), labels)  # a person whose every photo failed leaves no gap
    return _write_real(out, src, crops, labels, classes, paths, (h, w), grayscale, counts, skipped, shard_size)


def _write_real(out: Path, src, crops: np.ndarray, labels: np.ndarray, classes: list[str], paths: list[str],
                size: tuple[int, int], grayscale: bool, counts: dict, skipped: list, shard_size: int) -> dict:
    """Shards, manifest and dataset.json of aligned real crops with their classes."""
    h, w = size
    num_shards = int(np.ceil(len(paths) / shard_size))
    dtype = meta_dtype(0, 0, 0)
    rows = []
    for k in range(num_shards):
        sl = slice(k * shard_size, min((k + 1) * shard_size, len(paths)))
        meta = np.zeros(sl.stop - sl.start, dtype)
        for name in ("illumination", "pose", "camera_distance", "background"):
            meta[name] = np.nan  # a photograph's latents are unknown
        meta["label"] = labels[sl]
        meta["identity"] = labels[sl]
        meta["sample"] = np.arange(sl.start, sl.stop)
        meta["secondary"] = -1
        meta["phi"] = 1.0
        write_shard(out, k, np.ascontiguousarray(crops[sl]), meta)
        for r, i in enumerate(range(sl.start, sl.stop)):
            rows.append({"index": i, "shard": k, "row": r, "label": int(labels[i]), "secondary": -1, "phi": "1.0000",
                         "source": paths[i]})
    info = {
        "kind": "real",
        "name": Path(src).name,
        "num_images": len(paths),
        "num_classes": len(classes),
        "num_shards": num_shards,
        "shard_size": shard_size,
        "size": [h, w],
        "mixup": False,
        "grayscale": grayscale,
        "classes": classes,
        "alignment": counts,
        "skipped": [{"path": rel, "reason": why} for rel, why in skipped],
    }
    write_dataset_info(out, info, rows)
    return info


def _subset(labels: np.ndarray, max_identities: int | None, max_per_identity: int | None) -> np.ndarray:
    keep = []
    for rank, label in enumerate(np.unique(labels)):
        if max_identities is not None and rank >= max_identities:
            break
        members = np.flatnonzero(labels == label)
        keep.extend(members[:max_per_identity] if max_per_identity else members)
    return np.array(keep, dtype=np.int64)
