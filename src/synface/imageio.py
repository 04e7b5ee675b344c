"""Strict image reading: every image comes back as uint8 RGB (H, W, 3) or a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synface.errors import DataNotFoundError, ImageReadError

# ITU-R BT.601 luma, the weights PIL's "L" conversion uses; every luma in the project takes them from here.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_LUMA = np.array(LUMA_WEIGHTS, dtype=np.float32)


def read_rgb(path: str | Path, grayscale: bool = False) -> np.ndarray:
    """Decode ``path`` fully (truncated files raise) into uint8 RGB.

    Gray sources are replicated to three channels; ``grayscale=True`` turns colour
    images into replicated luma the same way, so any benchmark can be scored in gray.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    return to_gray3(rgb) if grayscale else rgb


def to_gray3(rgb: np.ndarray) -> np.ndarray:
    """Luma of a uint8 RGB array (..., 3), replicated to three channels."""
    luma = np.rint(rgb.astype(np.float32) @ _LUMA).clip(0, 255).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write uint8 RGB to ``path`` (format from the suffix), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def write_contact_sheet(rows: list[tuple[str, np.ndarray]], path: str | Path) -> Path:
    """One captioned strip per (label, uint8 images (N, H, W, 3)) row, stacked, written as a
    256-colour PNG (small enough to commit)."""
    from PIL import ImageDraw

    strips = []
    for label, images in rows:
        strip = Image.fromarray(np.concatenate(list(images), axis=1))
        caption = Image.new("RGB", (strip.width, 14), "white")
        ImageDraw.Draw(caption).text((2, 1), label, fill="black")
        strips += [caption, strip]
    sheet = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips)), "white")
    y = 0
    for strip in strips:
        sheet.paste(strip, (0, y))
        y += strip.height
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256).save(path, optimize=True)
    return path
