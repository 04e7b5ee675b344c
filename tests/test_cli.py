"""The ``synface`` command end to end on small real data."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from synface.cli import app
from synface.faces.landmarks import read_landmarks
from synface.faces.templates import template

runner = CliRunner()


@pytest.fixture()
def small_lfw_tree(lfw_root, lfw_sample, tmp_path):
    """Eight LFW images in an identity tree plus one corrupt file, without landmarks."""
    src = tmp_path / "raw"
    for rel in lfw_sample[:8]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lfw_root / "images" / rel, src / rel)
    (src / "Broken").mkdir()
    (src / "Broken" / "Broken_0001.jpg").write_bytes(b"not a jpeg at all")
    return src


def test_align_detects_aligns_and_lists_skipped_images(small_lfw_tree, tmp_path):
    dst = tmp_path / "aligned"
    result = runner.invoke(app, ["align", str(small_lfw_tree), str(dst), "--size", "112x112", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    crops = sorted(dst.rglob("*.png"))
    assert len(crops) == 8
    skipped = (dst / "skipped.txt").read_text()
    assert "Broken/Broken_0001.jpg" in skipped and "cannot read image" in skipped
    aligned_points = read_landmarks(dst / "landmarks.txt")
    assert len(aligned_points) == 8
    # Least-squares alignment maps each face's landmark centroid onto the template's.
    for points in aligned_points.values():
        assert np.abs(points.mean(0) - template((112, 112)).mean(0)).max() < 0.01
    assert len(read_landmarks(dst / "source_landmarks.txt")) == 8


def _tiny_benchmark(lfw_root, lfw_sample, tmp_path, corrupt=False):
    folder = tmp_path / "bench"
    rels = lfw_sample[:8]
    for rel in rels:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lfw_root / "images" / rel, folder / rel)
    if corrupt:
        (folder / rels[5]).write_bytes(b"\xff\xd8garbage")
    lines = ["fold,path1,path2,same"]
    for i in range(8):
        lines.append(f"{i % 2},{rels[i]},{rels[i]},1")
        lines.append(f"{i % 2},{rels[i]},{rels[(i + 1) % 8]},0")
    (folder / "pairs.csv").write_text("\n".join(lines) + "\n")
    return folder / "pairs.csv"


def test_evaluate_random_init_on_a_csv_benchmark_writes_the_record(lfw_root, lfw_sample, tmp_path, monkeypatch):
    csv = _tiny_benchmark(lfw_root, lfw_sample, tmp_path)
    out = tmp_path / "result.json"
    args = ["evaluate", "--benchmark", str(csv), "--backbone", "mobilefacenet", "--random-init",
            "--input-size", "56x48", "--device", "cpu", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    for key in ("benchmark", "pairs", "folds", "accuracy_mean", "accuracy_std", "auc",
                "tar_at_far_1e-3", "grayscale", "flip", "seconds"):
        assert key in record
    assert record["pairs"] == 16 and record["folds"] == 2 and record["grayscale"] is False
    # Identical-image pairs score 1.0, so even random weights rank them above the rest.
    assert record["auc"] == 1.0
    assert record["alignment"] == {"mtcnn": 8}
    # A second run hits the crop cache: nothing is detected or aligned again, same numbers.
    import synface.faces.pipeline as pipeline

    def no_alignment(*args, **kwargs):
        raise AssertionError("aligned again instead of reading the crop cache")

    monkeypatch.setattr(pipeline, "iter_aligned", no_alignment)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(out.read_text())["accuracy_mean"] == record["accuracy_mean"]
    monkeypatch.undo()
    gray = runner.invoke(app, args + ["--grayscale"])
    assert gray.exit_code == 0
    assert json.loads(out.read_text())["grayscale"] is True


def test_evaluate_fails_clearly_on_a_corrupt_image(lfw_root, lfw_sample, tmp_path):
    csv = _tiny_benchmark(lfw_root, lfw_sample, tmp_path, corrupt=True)
    result = runner.invoke(app, ["evaluate", "--benchmark", str(csv), "--backbone", "mobilefacenet",
                                 "--random-init", "--input-size", "56x48", "--device", "cpu"])
    assert result.exit_code == 2
    assert lfw_sample[5].split("/")[-1] in result.output and "cannot read image" in result.output


def test_evaluate_rejects_unknown_benchmark_and_bad_arguments():
    result = runner.invoke(app, ["evaluate", "--benchmark", "megaface", "--backbone", "mobilefacenet", "--random-init"])
    assert result.exit_code == 2 and "unknown benchmark 'megaface'" in result.output
    result = runner.invoke(app, ["evaluate", "--benchmark", "lfw"])
    assert result.exit_code == 2 and "--checkpoint" in result.output


def test_dataset_commands_generate_stats_export(tmp_path, data_root):
    spec = tmp_path / "mini.yaml"
    spec.write_text("name: mini\nidentities: 3\nsamples: 2\nmixup: syn2\n")
    out = tmp_path / "mini"
    result = runner.invoke(app, ["generate", str(spec), "--out", str(out), "--validation-identities", "3",
                                 "--validation-samples", "2"])
    assert result.exit_code == 0, result.output
    split = json.loads((out / "validation" / "dataset.json").read_text())
    assert (split["num_classes"], split["num_images"], split["name"]) == (3, 6, "mini-validation")
    result = runner.invoke(app, ["stats", str(out), "--out", str(tmp_path / "stats")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert summary["images"] == 6 and summary["identities"] == 3
    assert (tmp_path / "stats" / "contact_sheet.png").is_file() and (tmp_path / "stats" / "distributions.png").is_file()
    result = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "folder")])
    assert result.exit_code == 0, result.output
    assert sorted(p.parent.name for p in (tmp_path / "folder").rglob("*.png")) == ["id_000000"] * 2 + ["id_000001"] * 2 + [
        "id_000002"] * 2


def test_generate_rejects_bad_specs_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nidentities: 3\nsamples: 2\nwidht: 4\n")
    result = runner.invoke(app, ["generate", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown key(s) 'widht'" in result.output
    result = runner.invoke(app, ["generate", "no_such_set", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown dataset spec 'no_such_set'" in result.output


def test_appearance_build_names_a_missing_real_folder(tmp_path):
    result = runner.invoke(app, ["appearance", "build", "--real", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b.npz")])
    assert result.exit_code == 2
    assert "real image folder not found" in result.output and "nowhere" in result.output
    (tmp_path / "people").mkdir()
    result = runner.invoke(app, ["appearance", "build", "--real", str(tmp_path / "people"), "--out", str(tmp_path / "b.npz")])
    assert result.exit_code == 2 and "no landmark file" in result.output


def test_appearance_scenes_fits_photos_and_prints_their_pose_spread(data_root, tmp_path):
    out = tmp_path / "scenes.npz"
    result = runner.invoke(app, ["appearance", "scenes", "--real", str(data_root / "celeba-299"), "--out", str(out),
                                 "--max-identities", "1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "yaw" in result.output and "roll" in result.output
    missing = runner.invoke(app, ["appearance", "scenes", "--real", str(tmp_path / "nowhere"), "--out", str(out)])
    assert missing.exit_code != 0 and "nowhere" in missing.output
