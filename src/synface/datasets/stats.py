"""Looking at a dataset: counts, per-factor distributions, a contact sheet, an export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from synface.datasets.storage import ShardedDataset
from synface.facemodel.latents import active_blendshapes
from synface.imageio import write_image


def dataset_stats(ds: ShardedDataset) -> dict:
    per_class = np.bincount(ds.labels, minlength=ds.num_classes)
    mixed = ds.secondary >= 0
    stats = {
        "name": ds.info["name"],
        "kind": ds.info["kind"],
        "images": len(ds),
        "identities": ds.num_classes,
        "images_per_identity": {
            "min": int(per_class.min()),
            "max": int(per_class.max()),
            "mean": float(per_class.mean()),
            "std": float(per_class.std()),
        },
        "mixup": {
            "mixed_images": int(mixed.sum()),
            "phi_values": {f"{v:.2f}": int(c) for v, c in zip(*np.unique(ds.phi, return_counts=True))},
        },
    }
    if ds.info["kind"] == "synthetic":
        stats["factors"] = {name: _summary(values) for name, values in synthetic_factors(ds.meta).items()}
    return stats


def synthetic_factors(meta: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image values of the latent factors people look at, from shard metadata."""
    pose = np.degrees(meta["pose"])
    return {
        "yaw_deg": pose[:, 0],
        "pitch_deg": pose[:, 1],
        "roll_deg": pose[:, 2],
        "active_blendshapes": active_blendshapes(meta["expression"]),
        "ambient_light": meta["illumination"][:, 0:3].mean(1),  # the SH DC term, mean over RGB
        "camera_distance_cm": meta["camera_distance"],
    }


def _summary(x: np.ndarray) -> dict:
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()), "std": float(x.std()), "p05": float(np.percentile(x, 5)),
            "p95": float(np.percentile(x, 95))}


def plot_stats(ds: ShardedDataset, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("images per identity", np.bincount(ds.labels, minlength=ds.num_classes)), ("mixup phi", ds.phi)]
    if ds.info["kind"] == "synthetic":
        panels += list(synthetic_factors(ds.meta).items())
    cols = 4
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (title, values) in zip(axes.ravel(), panels):
        ax.hist(values, bins=min(40, max(5, len(np.unique(values)))), color="#4a7ab5")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{ds.info['name']}: {len(ds)} images, {ds.num_classes} identities", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def contact_sheet(ds: ShardedDataset, path: Path, identities: int = 8, per_identity: int = 10) -> None:
    """A grid: one row per identity (the first ``identities``), its first images left to right."""
    h, w = ds.image_size
    classes = np.unique(ds.labels)[:identities]
    sheet = np.full((len(classes) * (h + 2), per_identity * (w + 2), 3), 255, np.uint8)
    for r, label in enumerate(classes):
        members = np.flatnonzero(ds.labels == label)[:per_identity]
        for c, image in enumerate(ds.images(members)):
            sheet[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = image
    write_image(path, sheet)


def export_imagefolder(ds: ShardedDataset, out: Path, progress: bool = True) -> int:
    """``out/<class>/<index>.png`` for tools that read image folders; a mixed image goes
    under its primary class (its soft label stays in the source manifest)."""
    classes = ds.info.get("classes")
    batch = 256
    for start in tqdm(range(0, len(ds), batch), desc="export", unit="batch", disable=not progress):
        indices = np.arange(start, min(start + batch, len(ds)))
        for i, image in zip(indices, ds.images(indices)):
            label = int(ds.labels[i])
            name = classes[label] if classes else f"id_{label:06d}"
            write_image(out / name / f"{i:08d}.png", image)
    return len(ds)
