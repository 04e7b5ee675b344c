"""Similarity alignment of 5 facial points onto a template."""

from __future__ import annotations

import cv2
import numpy as np

from synface.errors import SynfaceError
from synface.faces.templates import parse_size, template


# How synthetic renders can be aligned (generate/generator.py): from the mesh's exact 5
# landmarks, or from the 5 points MTCNN finds on the render, as photos are.
RENDER_ALIGNMENTS = ("exact", "mtcnn")

def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Umeyama (1991), closed form. Returns the 2x3 matrix M with dst ~= M @ [x, y, 1].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = (src_c**2).sum() / len(src)
    if var_src < 1e-12:
        raise ValueError("source points are all identical; no similarity transform exists")
    cov = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    # Reflections are not similarities: flip the weakest axis when the fit would mirror.
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = (sigma * d).sum() / var_src
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_dst - scale * rotation @ mu_src
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def alignment_matrix(landmarks: np.ndarray, size: str | tuple[int, int] = (112, 96)) -> np.ndarray:
    """The similarity that puts 5 landmarks (5, 2) on the template of ``size``."""
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return similarity_transform(landmarks, template(size))


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: str | tuple[int, int] = (112, 96)
) -> np.ndarray:
    """Warp ``image`` (H, W, 3 uint8) so its 5 landmarks sit on the template; returns (h, w, 3)."""
    h, w = parse_size(size)
    matrix = alignment_matrix(landmarks, (h, w))
    # Faces are usually enlarged here (LFW eyes are ~24 px apart, the template's 35 px):
    # bilinear is right for that; border pixels replicate so no black wedges enter training.
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def from_arcface_112(crops: np.ndarray, size: str | tuple[int, int], grayscale: bool = False) -> np.ndarray:
    """112x112 ArcFace-aligned crops (insightface .bin / .rec) in our template at ``size``:
    each is aligned as an image whose 5 points are the ArcFace template (for 112x96 that is
    exactly the middle 96 columns)."""
    from synface.imageio import to_gray3

    points = template((112, 112))
    out = np.stack([align_face(c, points, size) for c in crops]) if len(crops) else np.zeros((0, *parse_size(size), 3), np.uint8)
    return np.stack([to_gray3(c) for c in out]) if grayscale and len(out) else out


def decode_arcface_112(data: bytes, what: str) -> np.ndarray:
    """An encoded (JPEG / PNG) ArcFace crop, as insightface's .rec and .bin files store them,
    as RGB uint8 (112, 112, 3); another size is area-resized to 112x112. ``what`` names the
    image in the error when it cannot be decoded."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SynfaceError(f"{what} cannot be decoded as an image")
    if bgr.shape[:2] != (112, 112):
        bgr = cv2.resize(bgr, (112, 112), interpolation=cv2.INTER_AREA)
    return bgr[..., ::-1]
