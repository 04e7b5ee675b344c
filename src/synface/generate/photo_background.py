"""Real photos around rendered heads (``background: photos | photos_face``).

A rendered head is composited over an aligned crop of a real training photo (celeba-299)
instead of a drawn background: hair that sticks out, ears, neck, shoulders, clothing and the
scene behind come from a photograph, with its optics, noise and JPEG, and only the face and
the hair shell are ours (``photos_face``: the face alone). Both are aligned to the same 5-point template, so the photo's own
face lies under the rendered one. The photo is drawn per image from its own seed stream, so
what surrounds a face says nothing about who it is: a recogniser has to read the face.

Of a few random photos (each mirrored half the time) the one whose fitted yaw is nearest the
render's is taken, so that the photo's head turns the way the rendered one does; each
image's auto-exposure aims at the brightness of that photo's face, so the face matches its
surroundings as it would in one exposure.

Only training-side photos belong here: LFW is a test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synface.errors import DataNotFoundError
from synface.facemodel.scenes import ensure_scenes
from synface.faces.templates import template

# "photos": the whole rendered head (face, ears, neck and hair shell) over the photo;
# "photos_face": the face alone (forehead to chin, eyes and mouth), so the photo's own hair,
# ears and neck frame it, as in a face swap.
FACE_ONLY = "photos_face"
PHOTO_BACKGROUNDS = ("photos", FACE_ONLY)
# The mesh regions "photos_face" draws (FaceModel.region_names): the face, not the head.
FACE_ONLY_EXCLUDED_REGIONS = ("head_neck",)
# Photos drawn per image; the one with the nearest yaw is kept. 8 of ~5,000 keeps the choice
# random (any photo can be drawn) while the yaw usually lands within a few degrees.
CANDIDATES = 8


@dataclass
class PhotoBackgrounds:
    crops: np.ndarray  # (N, h, w, 3) uint8 real photos aligned to the template
    yaws: np.ndarray  # (N,) each photo's fitted yaw (radians, the generator's convention)
    face_brightness: np.ndarray  # (N,) mean of the photo's inner face, 0..1

    @classmethod
    def load(cls, size: str | tuple[int, int], scenes_path: str | Path | None = None) -> PhotoBackgrounds:
        """The photos of the scenes file (``facemodel/scenes.py``: fitted on first use),
        aligned from their landmark file at ``size`` (cached under ``cache/aligned``)."""
        from synface.faces.pipeline import aligned_crops

        with np.load(ensure_scenes(scenes_path)) as z:
            files, yaws, source = [str(f) for f in z["files"]], z["poses"][:, 0].astype(np.float64), Path(str(z["source"]))
        landmarks = source / "landmarks.txt"
        if not landmarks.is_file():
            raise DataNotFoundError(f"background photos: {landmarks} not found (the photos the scenes file "
                                    f"{scenes_path or 'cache/scenes/celeba-299.npz'} was fitted from)")
        crops, _ = aligned_crops(source, files, size, landmarks, desc="align background photos")
        crops = np.ascontiguousarray(crops)
        return cls(crops, yaws, inner_face_brightness(crops))

    def choose(self, rng: np.random.Generator, yaw: float) -> tuple[int, bool]:
        """(photo index, mirrored) for an image whose head is turned by ``yaw`` radians."""
        picks = rng.integers(len(self.crops), size=CANDIDATES)
        mirrored = rng.random(CANDIDATES) < 0.5
        # A mirrored photo's head turns the other way.
        candidate_yaws = np.where(mirrored, -self.yaws[picks], self.yaws[picks])
        best = int(np.argmin(np.abs(candidate_yaws - yaw)))
        return int(picks[best]), bool(mirrored[best])

    def image(self, index: int, mirrored: bool) -> np.ndarray:
        crop = self.crops[index]
        return crop[:, ::-1] if mirrored else crop


def inner_face_brightness(crops: np.ndarray) -> np.ndarray:
    """(N,) mean value (0..1) of each aligned crop inside the box from the eyes to the mouth
    corners: the skin a camera's exposure is read from, and little of the background."""
    h, w = crops.shape[1:3]
    points = template((h, w))
    x0, x1 = int(round(points[0, 0])), int(round(points[1, 0])) + 1
    y0, y1 = int(round(points[:2, 1].min())), int(round(points[3:, 1].max())) + 1
    return crops[:, y0:y1, x0:x1].reshape(len(crops), -1).mean(axis=1) / 255.0


def composite(rgba: np.ndarray, backgrounds: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA renders (B, h, w, 4) over RGB backgrounds (B, h, w, 3), uint8, per
    pixel and in float32 (no image depends on its batch)."""
    colour = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    out = colour + (1.0 - alpha) * backgrounds.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)

