import numpy as np
import pytest

from synface.evaluate.pairs import load_benchmark, load_lfw_pairs, load_pair_csv
from synface.errors import SynfaceError


def test_lfw_has_6000_pairs_in_10_folds_of_300_plus_300(lfw_root):
    bench = load_lfw_pairs(lfw_root)
    assert len(bench.pairs) == 6000
    assert bench.num_folds == 10
    for fold in range(10):
        in_fold = bench.folds == fold
        assert in_fold.sum() == 600
        assert bench.same[in_fold].sum() == 300
    # Every named image exists, and matched pairs really name one person.
    assert all((bench.image_root / rel).is_file() for rel in bench.images)
    people = np.array([rel.split("/")[0] for rel in bench.images])
    assert np.array_equal(people[bench.pairs[:, 0]] == people[bench.pairs[:, 1]], bench.same)
    assert bench.landmarks_file is not None and bench.landmarks_file.name == "lfw_landmark.txt"


def test_named_benchmark_lfw_resolves_through_synface_data(lfw_root):
    assert len(load_benchmark("lfw").pairs) == 6000


def test_unknown_benchmark_name_is_a_clear_error():
    with pytest.raises(SynfaceError, match="unknown benchmark 'cfp-fp'"):
        load_benchmark("cfp-fp")


def test_pair_csv_parses_folds_labels_and_shared_images(tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_text("fold,path1,path2,same\n1,a.jpg,b.jpg,1\n1,a.jpg,c.jpg,0\n2,c.jpg,d.jpg,true\n2,b.jpg,d.jpg,false\n")
    bench = load_pair_csv(csv)
    assert bench.images == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert bench.pairs.tolist() == [[0, 1], [0, 2], [2, 3], [1, 3]]
    assert bench.same.tolist() == [True, False, True, False]
    assert bench.folds.tolist() == [0, 0, 1, 1]
    assert bench.image_root == tmp_path and bench.landmarks_file is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,c\n", "header must be"),
        ("fold,path1,path2,same\nx,a.jpg,b.jpg,1\n", "fold must be an integer"),
        ("fold,path1,path2,same\n1,a.jpg,b.jpg,maybe\n", "same 0/1"),
        ("fold,path1,path2,same\n1,a.jpg,b.jpg,1\n", "at least 2 folds"),
    ],
)
def test_malformed_pair_csv_names_the_file(tmp_path, text, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(SynfaceError, match=message) as info:
        load_pair_csv(csv)
    assert str(csv) in str(info.value)


def test_the_small_lfw_of_end_to_end_tests_keeps_ten_balanced_folds(small_lfw):
    bench = load_benchmark("lfw")
    assert bench.image_root == small_lfw / "images" and len(bench.pairs) == 600
    for fold in range(10):
        assert bench.same[bench.folds == fold].sum() == 30 and (bench.folds == fold).sum() == 60
    assert len(bench.images) < 1300
