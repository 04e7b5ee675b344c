"""The package works outside a source checkout (issue 20): a wheel carries its presets,
dataset specs and levers as package data."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed (without dependencies) into a folder."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(work / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((work / "dist").glob("synface-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "synface/configs/train/cpu.yaml" in names and "synface/configs/datasets/demo.yaml" in names
    assert "synface/configs/ab/baseline.yaml" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(work / "site"),
                    str(wheel)], check=True, capture_output=True)
    return work


def run_installed(installed: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(installed / "site"))
    return subprocess.run([sys.executable, *args], cwd=installed, env=env, capture_output=True, text=True)


def test_an_installed_wheel_generates_and_trains_from_its_packaged_configs(installed, data_root):
    where = run_installed(installed, "-c", "import synface.paths as p; print(p.__file__); print(p.config_dir('train'))")
    assert where.returncode == 0, where.stderr
    assert str(installed / "site") in where.stdout and str(ROOT) not in where.stdout
    made = run_installed(installed, "-m", "synface.cli", "generate", "demo", "--out", "data", "--width", "4",
                         "--depth", "4")
    assert made.returncode == 0, made.stderr
    trained = run_installed(installed, "-m", "synface.cli", "train", "cpu", "--data", "data", "--out", "run",
                            "--set", "batch_size=8", "--set", "optim.epochs=1", "--set", "compile=false",
                            "--set", "amp=false", "--set", "workers=0", "--set", "validation.identities=0")
    assert trained.returncode == 0, trained.stderr
    assert (installed / "run" / "checkpoint.pt").is_file()
