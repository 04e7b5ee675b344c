import numpy as np
import pytest

from synface.evaluate.pairs import load_benchmark
from synface.datasets.syn_lfw import NAMESPACE, SynLfwConfig, build_syn_lfw, lfw_people
from synface.generate.generator import FaceGenerator, GeneratorConfig


@pytest.fixture(scope="module")
def syn_lfw(tmp_path_factory, lfw_root):
    out = tmp_path_factory.mktemp("synlfw")
    _, images = lfw_people(lfw_root)
    only = images[:12]
    info = build_syn_lfw(out, lfw_root, SynLfwConfig(), only=only, progress=False)
    return out, info, only


def test_pairs_file_has_ten_folds_of_300_plus_300(syn_lfw):
    out, info, _ = syn_lfw
    bench = load_benchmark(str(out))
    assert len(bench.pairs) == 6000 and bench.num_folds == 10
    for fold in range(10):
        same = bench.same[bench.folds == fold]
        assert len(same) == 600 and same.sum() == 300
    assert all(p.startswith("Syn_") and p.endswith(".png") for p in bench.images)
    assert info["people"] == 4281 and info["images"] == 7701  # LFW copy's counts


def test_rendered_twins_follow_lfw_pose_and_are_aligned(syn_lfw, lfw_root):
    import csv

    from synface.imageio import read_rgb

    out, _, only = syn_lfw
    rows = list(csv.DictReader((out / "attributes.csv").open()))
    assert [r["lfw_source"] for r in rows] == only
    for row in rows:
        image = read_rgb(out / "images" / row["image"])
        assert image.shape == (112, 96, 3) and image.std() > 10
        assert abs(float(row["yaw_deg"])) < 60
    assert (out / "landmarks.txt").read_text().count("\n") == len(only)


def test_mixup_attack_changes_identity_but_not_pose(syn_lfw, lfw_root, tmp_path):
    from synface.imageio import read_rgb

    out, _, only = syn_lfw
    attacked = tmp_path / "r06"
    build_syn_lfw(attacked, lfw_root, SynLfwConfig(ratio=0.6), only=only[:4], progress=False)
    a = (out / "attributes.csv").read_text().splitlines()[1:5]
    b = (attacked / "attributes.csv").read_text().splitlines()[1:]
    assert a == b  # same poses and light
    name = a[0].split(",")[0]
    diff = np.abs(read_rgb(out / "images" / name).astype(int) - read_rgb(attacked / "images" / name).astype(int))
    assert diff.mean() > 1.0


def test_syn_lfw_identities_are_not_training_identities(data_root):
    g = FaceGenerator(GeneratorConfig())
    train = np.stack([np.concatenate(g.identity(i, "train")) for i in range(2000)])
    syn = np.stack([np.concatenate(g.identity(i, NAMESPACE)) for i in range(300)])
    cross = np.linalg.norm(syn[:, None] - train[None], axis=-1).min(1)
    within = np.linalg.norm(train[:300, None] - train[None, 300:600], axis=-1)
    # Independent draws sit about as far from the training set as training identities sit
    # from each other; a shared or shifted seed stream would put some at distance ~0.
    assert cross.min() > 0.5 * np.median(within)
