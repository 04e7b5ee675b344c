import numpy as np
import pytest

from synface.errors import SynfaceError
from synface.faces.dense_landmarks import Landmarks68, box_from_five
from synface.faces.landmarks import read_landmarks
from synface.imageio import read_rgb


def test_box_from_five_is_a_square_around_eyes_and_mouth():
    five = np.array([[30.0, 40.0], [60.0, 40.0], [45.0, 55.0], [33.0, 70.0], [57.0, 70.0]])
    left, top, right, bottom = box_from_five(five)
    assert right - left == pytest.approx(bottom - top)
    assert left < 30 and right > 60 and top < 40 and bottom > 70


def test_68_points_agree_with_the_annotated_5_on_real_photos(data_root):
    pytest.importorskip("dlib")
    folder = data_root / "celeba-299"
    table = read_landmarks(folder / "landmarks.txt")
    predict = Landmarks68()
    errors = []
    for rel in sorted(table)[:40:4]:
        five = table[rel]
        points = predict(read_rgb(folder / rel), five)
        assert points.shape == (68, 2)
        # Eye centres (36-41, 42-47) and mouth corners (48, 54) against the annotation.
        ours = np.stack([points[36:42].mean(0), points[42:48].mean(0), points[48], points[54]])
        eye = np.linalg.norm(five[0] - five[1])
        errors.append(np.linalg.norm(ours - five[[0, 1, 3, 4]], axis=1).mean() / eye)
    assert np.median(errors) < 0.12


def test_68_points_refuse_an_image_that_is_not_rgb_bytes():
    pytest.importorskip("dlib")
    with pytest.raises(SynfaceError, match="uint8"):
        Landmarks68()(np.zeros((100, 100), np.float32), np.zeros((5, 2)))
