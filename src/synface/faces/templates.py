"""The 5-point alignment templates: the single source of truth for real and synthetic crops.

Points are (x, y) in the order left eye, right eye, nose tip, left mouth corner, right mouth
corner (image left/right), in pixel coordinates whose integer values are pixel centres.
"""

from __future__ import annotations

import numpy as np

# SphereFace / CosFace / SynFace crop, 112 high x 96 wide.
TEMPLATE_112x96 = np.array(
    [
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041],
    ],
    dtype=np.float64,
)
_BASE_HEIGHT, _BASE_WIDTH = 112, 96


def parse_size(size: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"112x96"`` or ``(112, 96)`` -> (height, width)."""
    if isinstance(size, str):
        try:
            h, w = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise ValueError(f"crop size must look like HEIGHTxWIDTH (e.g. 112x96), got {size!r}") from None
    else:
        h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ValueError(f"crop size {h}x{w} is too small (minimum 16x16)")
    return h, w


def template(size: str | tuple[int, int] = (112, 96)) -> np.ndarray:
    """The 5-point template for an output of ``size`` = (height, width).

    The 112x96 template is scaled by height/112 (about pixel centres, so aligning small is
    the same as aligning at full size then resizing) and centred horizontally. For 112x112
    this is the 112x96 template shifted 8 px right, i.e. exactly insightface's ArcFace template.
    """
    h, w = parse_size(size)
    scale = h / _BASE_HEIGHT
    pts = (TEMPLATE_112x96 + 0.5) * scale - 0.5
    pts[:, 0] += (w - _BASE_WIDTH * scale) / 2.0
    return pts


# The inner face (brows to chin, cheek to cheek) as an ellipse in the template's own measures:
# its centre sits this many eye-to-mouth distances below the eyes, and its half-axes are these
# multiples of the eye distance (wide) and of the eye-to-mouth distance (high). With the
# 112x96 template: centre (48, 73), half-axes 33 x 39 px, so brows and chin are inside and
# hair, ears, neck and background are outside.
INNER_FACE_CENTRE = 0.52
INNER_FACE_HALF_WIDTH = 0.95
INNER_FACE_HALF_HEIGHT = 0.95


def inner_face_mask(size: str | tuple[int, int] = (112, 96)) -> np.ndarray:
    """(h, w) bool: the pixels of an aligned crop of ``size`` that show the inner face."""
    h, w = parse_size(size)
    pts = template((h, w))
    eyes, mouth = pts[:2].mean(0), pts[3:].mean(0)
    eye_distance = float(np.linalg.norm(pts[1] - pts[0]))
    eye_to_mouth = float(mouth[1] - eyes[1])
    cx = (eyes[0] + mouth[0]) / 2
    cy = eyes[1] + INNER_FACE_CENTRE * eye_to_mouth
    y, x = np.mgrid[0:h, 0:w]
    return ((x - cx) / (INNER_FACE_HALF_WIDTH * eye_distance)) ** 2 + \
        ((y - cy) / (INNER_FACE_HALF_HEIGHT * eye_to_mouth)) ** 2 <= 1.0
