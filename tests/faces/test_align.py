import numpy as np
import pytest

from synface.faces.align import align_face, alignment_matrix, similarity_transform, transform_points
from synface.faces.landmarks import read_landmarks
from synface.faces.templates import TEMPLATE_112x96, parse_size, template
from synface.imageio import read_rgb


def test_arcface_template_is_the_112x96_one_shifted_8px():
    assert np.allclose(template((112, 96)), TEMPLATE_112x96)
    expected = TEMPLATE_112x96 + [8.0, 0.0]
    assert np.allclose(template((112, 112)), expected)
    assert np.allclose(template("56x48"), (TEMPLATE_112x96 + 0.5) / 2 - 0.5)


def test_parse_size_rejects_nonsense():
    assert parse_size("112x96") == (112, 96)
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_size("big")
    with pytest.raises(ValueError, match="too small"):
        parse_size((8, 8))


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.4, 1.7, np.array([12.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    assert np.allclose(matrix[:, :2], rot) and np.allclose(matrix[:, 2], shift)
    # A mirrored point set gets the best proper similarity, never a reflection.
    mirrored = similarity_transform(src, src * [-1, 1])
    assert np.linalg.det(mirrored[:, :2]) > 0


def _dots_image(points: np.ndarray, shape=(150, 150)) -> np.ndarray:
    """Gaussian dots (sigma 1.5 px) centred on sub-pixel points."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape, np.float64)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    return np.repeat((255 * img / img.max()).astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize("size", [(112, 96), (112, 112), (56, 48)])
def test_aligned_image_puts_the_landmarks_on_the_template(size):
    # Landmarks that are an exact similarity of the template: after warping, the dots'
    # centroids must sit on the template (checks the warp's pixel convention, not just the fit).
    angle, scale = -0.25, 0.62
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = TEMPLATE_112x96 @ rot.T + [40.3, 37.8]
    crop = align_face(_dots_image(points), points, size)[..., 0].astype(np.float64)
    for x, y in template(size):
        cx, cy = _dot_centroid(crop, x, y)
        assert abs(cx - x) < 1.0 and abs(cy - y) < 1.0, (size, (cx, cy), (x, y))


def _dot_centroid(img: np.ndarray, x: float, y: float, radius: int = 3) -> tuple[float, float]:
    x0, y0 = int(round(x)), int(round(y))
    win = img[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1].astype(np.float64)
    win = np.clip(win - 0.3 * win.max(), 0, None)
    yy, xx = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    return (win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()


def test_aligned_lfw_landmarks_land_within_1px_of_the_template(lfw_root, lfw_sample):
    """Real LFW landmarks: a similarity cannot put five free points exactly on the template,
    so check what alignment promises. (1) The fit is the least-squares optimum: its centroid is
    the template's, and no nearby similarity has a smaller residual. (2) In the warped crop each
    landmark lies within 1 px of where the fit sends it (tracked with dots through the warp).
    (3) The crops agree with the template to within a typical face-shape spread."""
    table = read_landmarks(lfw_root / "lfw_landmark.txt")
    target = template((112, 96))
    residuals = []
    for rel in lfw_sample[:50]:
        points = table[rel]
        matrix = alignment_matrix(points)
        moved = transform_points(matrix, points)
        assert np.allclose(moved.mean(0), target.mean(0), atol=1e-6)
        best = ((moved - target) ** 2).sum()
        # Similarities are M = [[a, -b, tx], [b, a, ty]]: nudge each of a, b, tx, ty both ways.
        for da, db, dx, dy in np.concatenate([np.eye(4), -np.eye(4)]) * [0.005, 0.005, 0.2, 0.2]:
            nudged = matrix + [[da, -db, dx], [db, da, dy]]
            assert ((transform_points(nudged, points) - target) ** 2).sum() > best
        markers = align_face(_dots_image(points), points, (112, 96))[..., 0]
        for (mx, my) in moved:
            cx, cy = _dot_centroid(markers, mx, my)
            assert abs(cx - mx) < 1.0 and abs(cy - my) < 1.0, (rel, (cx, cy), (mx, my))
        residuals.append(np.linalg.norm(moved - target, axis=1))
    assert np.median(residuals) < 3.0
    image = read_rgb(lfw_root / "images" / lfw_sample[0])
    crop = align_face(image, table[lfw_sample[0]], (112, 96))
    assert crop.shape == (112, 96, 3) and crop.dtype == np.uint8 and crop.std() > 10
