import numpy as np
import pytest
import torch

from synface.faces.landmarks import read_landmarks
from synface.faces.mtcnn import MTCNN, nms
from synface.imageio import read_rgb


@pytest.fixture(scope="module")
def detector():
    return MTCNN()


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [2, 2, 5, 5]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.95, 0.5, 0.8])
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]
    # "min" overlap also removes the small box inside the big one.
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [1, 2]


def test_mtcnn_finds_lfw_landmarks_within_4px_on_95_percent(detector, lfw_root, lfw_sample):
    reference = read_landmarks(lfw_root / "lfw_landmark.txt")
    images = [read_rgb(lfw_root / "images" / rel) for rel in lfw_sample]
    detections = detector.detect(images)
    worst = []
    for rel, image, det in zip(lfw_sample, images, detections):
        k = det.main_face(image.shape)
        if k is None:
            worst.append(np.inf)
            continue
        assert det.boxes.shape[1] == 4 and det.landmarks.shape[1:] == (5, 2)
        worst.append(np.linalg.norm(det.landmarks[k] - reference[rel], axis=1).max())
    worst = np.array(worst)
    assert len(worst) == 200
    assert np.mean(worst <= 4.0) >= 0.95, f"only {np.mean(worst <= 4.0):.1%} within 4 px"


def test_mtcnn_batches_mixed_sizes_and_finds_no_face_in_noise(detector, lfw_root, lfw_sample):
    face = read_rgb(lfw_root / "images" / lfw_sample[3])
    noise = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    flat = np.full((64, 64, 3), 128, np.uint8)
    out = detector.detect([face, noise, flat, face])
    assert len(out[0]) >= 1 and len(out[2]) == 0
    assert np.allclose(out[0].landmarks, out[3].landmarks)  # batching does not change results
    single = detector.detect([face])[0]
    assert np.allclose(single.landmarks, out[0].landmarks, atol=1e-3)
