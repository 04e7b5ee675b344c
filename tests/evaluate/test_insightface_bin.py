"""insightface .bin validation sets (issue 20): read, folded as insightface folds, scored like LFW."""

import pickle

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from synface.cli import app
from synface.evaluate.pairs import PairList, load_benchmark, load_insightface_bin
from synface.errors import SynfaceError
from synface.evaluate.benchmark import evaluate_model
from synface.faces.pipeline import aligned_crops
from synface.models import get_backbone

runner = CliRunner()


@pytest.fixture(scope="module")
def lfw_subset(lfw_root):
    """60 LFW pairs (30 same, 30 different) with insightface's 10 consecutive folds."""
    lfw = load_benchmark("lfw")
    chosen = np.r_[0:30, 300:330]
    used = np.unique(lfw.pairs[chosen])
    remap = {int(old): new for new, old in enumerate(used)}
    pairs = np.array([[remap[int(a)], remap[int(b)]] for a, b in lfw.pairs[chosen]])
    folds = np.repeat(np.arange(10), 6)
    return PairList("lfw-subset", lfw.image_root, [lfw.images[i] for i in used], pairs, lfw.same[chosen], folds,
                    lfw.landmarks_file)


@pytest.fixture(scope="module")
def bin_file(lfw_subset, tmp_path_factory):
    crops, _ = aligned_crops(lfw_subset.image_root, lfw_subset.images, (112, 112), lfw_subset.landmarks_file)
    encoded = []
    for a, b in lfw_subset.pairs:  # a .bin stores each pair's two images in turn
        for i in (a, b):
            encoded.append(cv2.imencode(".png", np.ascontiguousarray(crops[i][..., ::-1]))[1].tobytes())
    path = tmp_path_factory.mktemp("bin") / "lfw_subset.bin"
    path.write_bytes(pickle.dumps((encoded, lfw_subset.same.tolist()), protocol=4))
    return path, crops


def test_bin_reads_pairs_folds_and_crops(bin_file, lfw_subset):
    path, crops = bin_file
    bench = load_insightface_bin(path)
    assert len(bench.pairs) == 60 and bench.same.tolist() == lfw_subset.same.tolist()
    assert bench.folds.tolist() == np.repeat(np.arange(10), 6).tolist()  # KFold(10) without shuffle
    first_pair = lfw_subset.pairs[0]
    assert np.array_equal(bench.crops[0], crops[first_pair[0]]) and np.array_equal(bench.crops[1], crops[first_pair[1]])
    with pytest.raises(SynfaceError, match="not an insightface .bin"):
        (path.parent / "bad.bin").write_bytes(b"junk")
        load_insightface_bin(path.parent / "bad.bin")


def test_a_bin_of_lfw_crops_scores_as_lfw_does(bin_file, lfw_subset, tmp_path):
    path, _ = bin_file
    torch.manual_seed(0)
    model = get_backbone("mobilefacenet", (112, 96))
    options = dict(amp="fp32", compile=False)
    direct = evaluate_model(model, lfw_subset, (112, 96), **options)
    via_bin = evaluate_model(model, str(path), (112, 96), **options)
    # 112x96 is the middle 96 columns of the 112x112 ArcFace crop: the very same pixels
    assert via_bin["accuracy_mean"] == pytest.approx(direct["accuracy_mean"], abs=1e-12)
    assert via_bin["auc"] == pytest.approx(direct["auc"], abs=1e-9)
    checkpoint = tmp_path / "m.pt"
    from synface.models.checkpoint import backbone_spec, save_backbone

    save_backbone(checkpoint, model, backbone_spec("mobilefacenet", (112, 96)))
    twice = runner.invoke(app, ["evaluate", "--benchmark", f"{path},{path}", "--checkpoint", str(checkpoint),
                                "--precision", "fp32", "--json", str(tmp_path / "r.json")])
    assert twice.exit_code == 0, twice.output
    import json

    record = json.loads((tmp_path / "r.json").read_text())
    assert len(record["benchmarks"]) == 2 and "average" in twice.output
    assert record["average_accuracy"] == pytest.approx(direct["accuracy_mean"], abs=1e-12)
