"""Shared fixtures: the real data folder (tests skip without it) and a private cache."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two workers), each worker gets its share of the
    cores: torch's default of one thread per core in every worker would oversubscribe them.
    Set before torch is imported, so subprocesses that tests start inherit it too (and so the
    cores are counted here, not with ``synface.runtime.usable_cores``, which imports torch)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))


def _data_root() -> Path | None:
    value = os.environ.get("SYNFACE_DATA")
    if value and Path(value).is_dir():
        return Path(value)
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else None


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's cache, and see the shared data when it exists."""
    saved = {k: os.environ.get(k) for k in ("SYNFACE_CACHE", "SYNFACE_DATA")}
    os.environ["SYNFACE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    root = _data_root()
    if root is not None:
        os.environ["SYNFACE_DATA"] = str(root)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def _small_appearance_basis(_isolated_env):
    """The default learned appearance bases, built from 6 celeba-299 identities into the
    tests' private cache: generators in learned mode then start in seconds, not the ~2
    minutes the full basis takes (tests check mechanics, not the basis' quality)."""
    root = _data_root()
    if root is None or not (root / "celeba-299").is_dir():
        return
    from synface.facemodel.basis import default_basis_path
    from synface.facemodel.basis_builder import build_learned_appearance

    build_learned_appearance(root / "celeba-299", default_basis_path(), components=5, residual_components=2,
                             max_identities=6, progress=False)
    # The 68-landmark kind too (lever gen_landmarks68), where dlib is installed.
    if importlib.util.find_spec("dlib") is not None:
        build_learned_appearance(root / "celeba-299", default_basis_path("landmarks68"), components=5,
                                 residual_components=2, max_identities=6, progress=False, fit="landmarks68")


@pytest.fixture(scope="session", autouse=True)
def _small_photo_scenes(_isolated_env):
    """Photo scenes (pose and light per photo) of 4 celeba-299 identities in the private cache,
    for generators that draw photo light (the full fit takes about a minute)."""
    root = _data_root()
    if root is None or not (root / "celeba-299").is_dir():
        return
    from synface.facemodel.scenes import build_photo_scenes, default_scenes_path

    build_photo_scenes(root / "celeba-299", default_scenes_path(), progress=False, max_identities=4)


@pytest.fixture(scope="session", autouse=True)
def _small_default_refiner(_small_appearance_basis):
    """A one-step default refiner in the private cache, so that levers and specs naming the
    default refiner do not train the real one (~10 min); training itself is tested in
    tests/generate/test_refiner.py."""
    if _data_root() is None:
        return
    from synface.generate.generator import GeneratorConfig
    from synface.generate.refiner import RefinerConfig, default_refiner_path, render_training_images, train_refiner

    renders = render_training_images(GeneratorConfig(), 4, progress=False)
    train_refiner(renders, renders[::-1], default_refiner_path(),
                  RefinerConfig(channels=4, blocks=1, steps=1, batch=2, history=2, synthetic_images=4), progress=False)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("SYNFACE_DATA not set and ../shared/data absent: real-data test skipped")
    return root


@pytest.fixture(scope="session")
def lfw_root(data_root: Path) -> Path:
    path = data_root / "lfw"
    if not (path / "pairs.txt").is_file():
        pytest.skip(f"LFW not found under {data_root}")
    return path


# Pairs per class per fold in ``small_lfw_data``: 10 folds x 2 x 30 = 600 of LFW's 6,000 pairs,
# about 1,100 images to align and embed instead of 7,700 (end-to-end tests score LFW often).
SMALL_LFW_PAIRS = 30


@pytest.fixture(scope="session")
def small_lfw_data(lfw_root: Path, tmp_path_factory) -> Path:
    """A data root like the shared one, whose ``lfw/pairs.txt`` keeps the first 30 matched and
    30 mismatched pairs of each of the 10 folds (same images and landmarks, linked): for tests
    that run the whole pipeline, where scoring all of LFW is most of the time and the protocol
    itself is tested on the full list (tests/evaluate)."""
    root = tmp_path_factory.mktemp("small-data")
    for entry in lfw_root.parent.iterdir():
        if entry.name != "lfw":
            (root / entry.name).symlink_to(entry)
    lfw = root / "lfw"
    lfw.mkdir()
    for entry in lfw_root.iterdir():
        if entry.name != "pairs.txt":
            (lfw / entry.name).symlink_to(entry)
    lines = [line for line in (lfw_root / "pairs.txt").read_text().splitlines() if line.strip()]
    folds, per_fold = (int(v) for v in lines[0].split())
    body, kept = lines[1:], []
    for fold in range(folds):
        start = 2 * per_fold * fold
        kept += body[start : start + SMALL_LFW_PAIRS] + body[start + per_fold : start + per_fold + SMALL_LFW_PAIRS]
    (lfw / "pairs.txt").write_text(f"{folds}\t{SMALL_LFW_PAIRS}\n" + "\n".join(kept) + "\n")
    return root


@pytest.fixture
def small_lfw(small_lfw_data: Path, monkeypatch) -> Path:
    """``small_lfw_data`` as this test's SYNFACE_DATA."""
    monkeypatch.setenv("SYNFACE_DATA", str(small_lfw_data))
    return small_lfw_data / "lfw"


@pytest.fixture(scope="session")
def lfw_sample(lfw_root: Path) -> list[str]:
    """200 LFW images spread over the alphabet (every 20th person's first image)."""
    people = sorted(p.name for p in (lfw_root / "images").iterdir())
    return [
        f"{name}/{sorted(f.name for f in (lfw_root / 'images' / name).iterdir())[0]}" for name in people[::20][:200]
    ]


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory, data_root):
    """8 identities x 4 images (identity mixup syn3): enough for a training step or two."""
    from synface.datasets.build import generate_dataset
    from synface.datasets.spec import DatasetSpec

    out = tmp_path_factory.mktemp("train-data") / "syn"
    generate_dataset(DatasetSpec(name="tiny", identities=8, samples=4, mixup="syn3", shard_size=16), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_real(tmp_path_factory, data_root):
    """4 celeba-299 identities x 4 images, imported."""
    from synface.datasets.real import import_identity_folder

    out = tmp_path_factory.mktemp("train-data") / "real"
    import_identity_folder(data_root / "celeba-299", out, max_identities=4, max_per_identity=4)
    return out
