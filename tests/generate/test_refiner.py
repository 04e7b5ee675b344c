import numpy as np
import pytest
import torch

import synface.generate.refiner as refiner_module
from synface.datasets.storage import ShardedDataset
from synface.errors import DataNotFoundError, SynfaceError
from synface.generate.generator import FaceGenerator, GeneratorConfig, generator_signature
from synface.generate.refiner import (
    RefinerConfig, RefinerNet, load_refiner, refine_images, render_training_images, train_refiner, write_refiner_sheet,
)

TINY = dict(channels=8, blocks=1, batch=8, history=16, synthetic_images=16)


@pytest.fixture(scope="module")
def pools(data_root, tiny_real):
    renders = render_training_images(GeneratorConfig(), 16, progress=False)
    photos = ShardedDataset(tiny_real).images(np.arange(16))
    return renders, photos


@pytest.fixture(scope="module")
def trained(pools, tmp_path_factory):
    path = tmp_path_factory.mktemp("refiner") / "refiner.pt"
    report = train_refiner(*pools, path, RefinerConfig(steps=40, regularisation=0.1, **TINY), progress=False)
    return path, report


def test_an_untrained_refiner_changes_no_pixel(pools):
    renders, _ = pools
    assert np.array_equal(refine_images(RefinerNet(8, 1), renders), renders)


def test_training_writes_a_refiner_that_changes_renders(pools, trained, tmp_path):
    renders, photos = pools
    path, report = trained
    assert report.steps == 40 and np.isfinite(report.discriminator_loss) and report.mean_change > 0
    refined = refine_images(load_refiner(path), renders)
    assert refined.shape == renders.shape and refined.dtype == np.uint8
    assert np.abs(refined.astype(int) - renders).mean() > 0.1
    sheet = write_refiner_sheet(load_refiner(path), renders, photos, tmp_path / "sheet.png", count=4)
    assert sheet.stat().st_size > 1000


def test_self_regularisation_keeps_refined_images_near_the_render(pools, tmp_path):
    """The same training with a heavy L1 weight moves pixels far less than with none."""
    loose = train_refiner(*pools, tmp_path / "loose.pt", RefinerConfig(steps=25, regularisation=0.0, **TINY),
                          progress=False)
    tight = train_refiner(*pools, tmp_path / "tight.pt", RefinerConfig(steps=25, regularisation=50.0, **TINY),
                          progress=False)
    assert tight.mean_change < 0.5 * loose.mean_change


def test_a_killed_training_resumes_to_the_same_weights(pools, tmp_path, monkeypatch):
    config = RefinerConfig(steps=12, checkpoint_every=5, **TINY)
    train_refiner(*pools, tmp_path / "whole.pt", config, progress=False)

    calls = {"n": 0}
    remember = refiner_module._remember

    def dies_at_step_8(*args):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return remember(*args)

    monkeypatch.setattr(refiner_module, "_remember", dies_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train_refiner(*pools, tmp_path / "resumed.pt", config, progress=False)
    assert (tmp_path / "resumed.pt.partial").is_file() and not (tmp_path / "resumed.pt").exists()
    monkeypatch.setattr(refiner_module, "_remember", remember)
    calls["n"] = 0
    train_refiner(*pools, tmp_path / "resumed.pt", config, progress=False)
    whole = torch.load(tmp_path / "whole.pt", weights_only=True)["refiner"]
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)["refiner"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert not (tmp_path / "resumed.pt.partial").exists()


def test_the_generator_refines_each_image_on_its_own(data_root, trained):
    path, _ = trained
    plain, refined = FaceGenerator(GeneratorConfig()), FaceGenerator(GeneratorConfig(refiner=str(path)))
    signature = generator_signature(GeneratorConfig(refiner=str(path)))
    assert " refiner=" in signature and signature != generator_signature(GeneratorConfig())
    batch = refined.generate([0, 1, 2, 3], [0, 1, 0, 1])
    alone = refined.generate([2], [0])
    assert np.array_equal(batch[2], alone[0])  # an image's bytes do not depend on its batch
    assert np.array_equal(batch, refined.generate([0, 1, 2, 3], [0, 1, 0, 1]))
    assert not np.array_equal(batch, plain.generate([0, 1, 2, 3], [0, 1, 0, 1]))
    assert refined.timings["refine"] > 0


def test_missing_or_corrupt_refiner_files_are_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="nothing.pt"):
        generator_signature(GeneratorConfig(refiner=str(tmp_path / "nothing.pt")))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(SynfaceError, match="broken.pt"):
        load_refiner(broken)
    other = tmp_path / "other.pt"
    torch.save({"format": "something else"}, other)
    with pytest.raises(SynfaceError, match="not a synface refiner"):
        load_refiner(other)


def test_renders_and_photos_of_different_sizes_are_refused(pools, tmp_path):
    renders, photos = pools
    with pytest.raises(SynfaceError, match="differ in size"):
        train_refiner(renders[:, :56, :48], photos, tmp_path / "x.pt", RefinerConfig(steps=1, **TINY), progress=False)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="channels"):
        RefinerConfig(channels=0)


def test_refiner_train_command_and_a_refined_dataset(data_root, tmp_path):
    """`synface refiner train` on a 2-person real folder, then a spec that names the refiner:
    the dataset records the refiner in its generator signature."""
    import shutil

    from typer.testing import CliRunner

    from synface.cli import app
    from synface.datasets.build import generate_dataset
    from synface.datasets.spec import DatasetSpec, read_spec

    real = tmp_path / "real"
    lines = [line for line in (data_root / "celeba-299" / "landmarks.txt").read_text().splitlines()
             if line.split("/")[0] in ("7201", "7203")]
    for line in lines:
        rel = line.split()[0]
        (real / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / "celeba-299" / rel, real / rel)
    (real / "landmarks.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "refiner.pt"
    result = CliRunner().invoke(app, ["refiner", "train", "--out", str(out), "--real", str(real), "--steps", "3",
                                      "--images", "8", "--batch", "4", "--channels", "4", "--blocks", "1"])
    assert result.exit_code == 0, result.output
    # The console wraps long lines where it likes (the temporary path's length varies): compare words.
    assert out.is_file() and out.with_suffix(".png").is_file() and "3 steps" in " ".join(result.output.split())

    missing = CliRunner().invoke(app, ["refiner", "train", "--out", str(out), "--real", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "nope" in "".join(missing.output.split())

    data = tmp_path / "data"
    generate_dataset(DatasetSpec(name="refined", identities=2, samples=2, refiner=str(out)), data, progress=False)
    assert read_spec(data).refiner == str(out)
    assert "refiner=" in (data / "generator.txt").read_text()


def test_the_default_refiner_is_named_by_default_and_trained_when_missing(data_root, monkeypatch, tmp_path):
    from synface.generate import refiner as module

    assert module.refiner_file("default") == module.default_refiner_path()
    assert module.ensure_refiner() == module.default_refiner_path()  # the tests' small one: nothing trained
    monkeypatch.setattr(module, "default_refiner_path", lambda: tmp_path / "refiner" / "celeba-299.pt")
    trained = []
    monkeypatch.setattr(module, "render_training_images", lambda config, count, progress: np.zeros((2, 8, 8, 3), np.uint8))
    monkeypatch.setattr(module, "real_training_images", lambda size, real: np.zeros((2, 8, 8, 3), np.uint8))
    monkeypatch.setattr(module, "write_refiner_sheet", lambda *args: None)
    monkeypatch.setattr(module, "load_refiner", lambda path: None)
    monkeypatch.setattr(module, "train_refiner", lambda renders, photos, path, config, progress: (
        trained.append(config), path.parent.mkdir(parents=True), path.write_bytes(b"x")))
    assert module.ensure_refiner() == tmp_path / "refiner" / "celeba-299.pt"
    assert trained == [module.RefinerConfig()]
    with pytest.raises(DataNotFoundError, match="elsewhere.pt"):
        module.ensure_refiner(tmp_path / "elsewhere.pt")
