"""Fault injection (issue 22): SIGKILL at seeded random points of generate / train / merge,
corrupt bytes in a shard, two writers at once. Each must end in the bytes of an
uninterrupted run or in a clear refusal, never in silent damage."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from synface.datasets.build import ShardSelection, generate_dataset, merge_datasets
from synface.datasets.spec import load_spec
from synface.datasets.storage import shard_files, verify_dataset
from synface.locks import LOCK_NAME
from helpers import tree_bytes

SRC = str(Path(__file__).resolve().parents[1] / "src")


def env() -> dict:
    """The tests' environment (their private cache and data) for a child process."""
    return dict(os.environ, PYTHONPATH=SRC)


SPEC = "name: faults\nidentities: 8\nsamples: 4\nmixup: syn3\nshard_size: 4\n"  # 8 shards
# Long enough (60 shards, over a second of rendering) that a kill after a few shards lands mid-run.
LONG_SPEC = SPEC.replace("identities: 8", "identities: 60")
TRAIN_SET = ["--set", "backbone=mobilefacenet", "--set", "input_size=56x48", "--set", "batch_size=8",
             "--set", "compile=false", "--set", "amp=false", "--set", "workers=0", "--set", "validation.identities=0",
             "--set", "optim.epochs=6", "--set", "optim.milestones=[4]", "--set", "log_every=1"]



@pytest.fixture(scope="module")
def spec_path(tmp_path_factory, data_root):
    path = tmp_path_factory.mktemp("faults") / "faults.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, spec_path):
    out = tmp_path_factory.mktemp("faults-ref") / "ref"
    generate_dataset(load_spec(spec_path), out, progress=False)
    return out


def kill_when(proc: subprocess.Popen, ready, extra_s: float, limit_s: float = 180) -> None:
    deadline = time.time() + limit_s
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(extra_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def long_spec(tmp_path_factory, data_root):
    path = tmp_path_factory.mktemp("faults-long") / "long.yaml"
    path.write_text(LONG_SPEC)
    reference = path.parent / "ref"
    generate_dataset(load_spec(path), reference, progress=False)
    return path, reference


@pytest.mark.parametrize("trial", [0, 1])
def test_generate_killed_at_a_random_point_resumes_to_the_same_bytes(long_spec, tmp_path, trial):
    spec_path, reference = long_spec
    rng = np.random.default_rng(trial)
    after, extra = int(rng.integers(1, 6)), float(rng.uniform(0, 0.2))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "synface.cli", "generate", str(spec_path), "--out", str(out)],
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: len(list(out.glob("shards/*.json"))) >= after, extra)
    assert not (out / "dataset.json").exists(), "the kill must land mid-run"
    generate_dataset(load_spec(spec_path), out, progress=False)
    assert tree_bytes(out) == tree_bytes(reference)


def test_train_killed_at_a_random_point_resumes_to_the_same_weights(tiny_synthetic, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    command = [sys.executable, "-m", "synface.cli", "train", "cpu", "--data", str(tiny_synthetic), *TRAIN_SET]
    subprocess.run([*command, "--out", str(whole)], env=env(), check=True, capture_output=True)
    rng = np.random.default_rng(7)
    proc = subprocess.Popen([*command, "--out", str(killed)], env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: (killed / "checkpoint.pt").is_file(), float(rng.uniform(0, 0.2)))
    state = torch.load(killed / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] < 24, "the kill must land mid-run"
    refused = subprocess.run([*command, "--out", str(killed)], env=env(), capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr  # never silently restarted
    subprocess.run([*command, "--out", str(killed), "--resume"], env=env(), check=True, capture_output=True)
    a, b = (torch.load(p / "checkpoint.pt", map_location="cpu", weights_only=False) for p in (whole, killed))
    assert a["step"] == b["step"] == 24
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_merge_killed_mid_copy_finishes_to_the_same_bytes(spec_path, reference, tmp_path):
    spec = load_spec(spec_path)
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        generate_dataset(spec, part, shards=ShardSelection(i, 2), progress=False)
    out = tmp_path / "merged"
    calls = int(np.random.default_rng(3).integers(2, 20))  # 3 files a shard, 8 shards
    script = (
        "import os, shutil, signal, sys\n"
        "from synface.datasets.build import merge_datasets\n"
        "real, count = shutil.copyfile, [0]\n"
        "def copy(src, dst):\n"
        "    count[0] += 1\n"
        f"    if count[0] == {calls}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(src, dst)\n"
        "shutil.copyfile = copy\n"
        "merge_datasets(sys.argv[1:-1], sys.argv[-1])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *map(str, parts), str(out)], env=env())
    assert proc.returncode == -signal.SIGKILL and not (out / "dataset.json").exists()
    assert merge_datasets(parts, out)["complete"]
    assert tree_bytes(out) == tree_bytes(reference)


@pytest.mark.parametrize("trial", [0, 1, 2])
def test_a_corrupt_byte_anywhere_in_a_shard_is_caught_and_repaired(spec_path, reference, tmp_path, trial):
    rng = np.random.default_rng(100 + trial)
    out = tmp_path / "data"
    generate_dataset(load_spec(spec_path), out, progress=False)
    k = int(rng.integers(8))
    path = shard_files(out, k)[["images", "meta"][trial % 2]]
    data = bytearray(path.read_bytes())
    data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    path.write_bytes(bytes(data))
    assert [d[0] for d in verify_dataset(out)["damaged"]] == [k]
    assert generate_dataset(load_spec(spec_path), out, progress=False)["repaired"] == 1
    assert tree_bytes(out) == tree_bytes(reference)


def test_two_writers_at_once_one_finishes_and_one_is_refused(spec_path, reference, tmp_path):
    out = tmp_path / "shared"
    # The first writer is a real `synface generate`, slowed to a second a shard so that the
    # second one surely arrives while it works.
    slow = ("import sys, time\n"
            "import synface.datasets.build as build\n"
            "make = build._make_shard\n"
            "build._make_shard = lambda *a: (time.sleep(1.0), make(*a))\n"
            "from synface.cli import main\n"
            "sys.argv = ['synface', 'generate', sys.argv[1], '--out', sys.argv[2], '--validation-identities', '0']\n"
            "main()\n")
    first = subprocess.Popen([sys.executable, "-c", slow, str(spec_path), str(out)], env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / LOCK_NAME
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.is_file() and lock.read_text()):
        time.sleep(0.02)
    second = subprocess.run([sys.executable, "-m", "synface.cli", "generate", str(spec_path), "--out", str(out),
                             "--validation-identities", "0"],
                            env=env(), capture_output=True, text=True)
    first.communicate()
    assert first.returncode == 0
    assert second.returncode == 2 and f"is in use by pid {first.pid}" in " ".join(second.stderr.split())
    assert tree_bytes(out) == tree_bytes(reference)
