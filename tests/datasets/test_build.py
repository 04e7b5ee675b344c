"""Generation at scale: identical bytes whatever the split, resumable after SIGKILL, corruption caught."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from synface.datasets.build import ShardSelection, generate_dataset, make_generator, merge_datasets, render_rows
from synface.datasets.spec import load_spec, plan_images
from synface.datasets.storage import CorruptShardError, ShardedDataset, collate_batch, shard_files
from synface.errors import SynfaceError
from helpers import tree_bytes

TINY = """name: tiny
identities: 6
samples: 4
mixup: syn3
shard_size: 8
"""



@pytest.fixture(scope="module")
def spec_file(tmp_path_factory, data_root):
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, spec_file):
    out = tmp_path_factory.mktemp("ref") / "tiny"
    summary = generate_dataset(load_spec(spec_file), out, workers=1, progress=False)
    assert summary == {"made": 3, "repaired": 0, "skipped": 0, "complete": True, "num_shards": 3}
    return out


def test_workers_and_merged_shards_give_identical_bytes(reference, spec_file, tmp_path):
    spec = load_spec(spec_file)
    two = tmp_path / "two"
    generate_dataset(spec, two, workers=2, progress=False)
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        summary = generate_dataset(spec, part, shards=ShardSelection(i, 2), progress=False)
        assert not summary["complete"]
    merged = tmp_path / "merged"
    assert merge_datasets(parts, merged)["complete"]
    ref = tree_bytes(reference)
    assert {"dataset.json", "manifest.csv", "spec.yaml", "shards/shard-00002.npy"} <= set(ref)
    assert tree_bytes(two) == ref
    assert tree_bytes(merged) == ref


def test_sigkilled_run_resumes_to_the_same_bytes(spec_file, tmp_path):
    spec_text = TINY.replace("identities: 6", "identities: 12").replace("shard_size: 8", "shard_size: 4")
    spec_path = tmp_path / "killme.yaml"
    spec_path.write_text(spec_text)
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "synface.cli", "generate", str(spec_path), "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("shards/*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("shards/*.json")))
    assert 2 <= done < 12 and not (out / "dataset.json").exists(), "the kill must land mid-run"
    (out / "shards" / "shard-00011.npy.tmp").write_bytes(b"half a shard")  # what a kill mid-write leaves
    with pytest.raises(SynfaceError, match="unfinished"):
        ShardedDataset(out)
    summary = generate_dataset(load_spec(spec_path), out, progress=False)
    assert summary["skipped"] == done and summary["complete"]
    fresh = tmp_path / "fresh"
    generate_dataset(load_spec(spec_path), fresh, progress=False)
    assert tree_bytes(out) == tree_bytes(fresh)


def test_loader_yields_the_rendered_images_with_soft_labels(reference, spec_file):
    spec = load_spec(spec_file)
    ds = ShardedDataset(reference)
    assert (len(ds), ds.num_classes, ds.image_size) == (24, 6, (112, 96))
    plan = plan_images(spec)
    images, _ = render_rows(make_generator(spec), spec, plan.rows(9, 11))
    np.testing.assert_array_equal(ds.images([9, 10]), images)
    loader = torch.utils.data.DataLoader(ds, batch_size=10, shuffle=True, collate_fn=collate_batch)
    seen = []
    for batch, labels in loader:
        assert batch.dtype == torch.uint8 and batch.shape[1:] == (3, 112, 96)
        assert batch.is_contiguous(memory_format=torch.channels_last)
        assert labels.label.shape == labels.phi.shape == labels.secondary.shape == (len(batch),)
        seen += labels.label.tolist()
    assert sorted(seen) == sorted(plan.label.tolist())
    image, (label, secondary, phi) = ds[5]
    assert image.shape == (3, 112, 96) and (label, secondary, phi) == (
        int(plan.label[5]), int(plan.secondary[5]), pytest.approx(float(plan.phi[5])))


def test_corrupt_and_truncated_shards_are_named(reference, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(reference, broken)
    path = shard_files(broken, 1)["images"]
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    ds = ShardedDataset(broken)
    ds.images([0])  # shard 0 is fine
    with pytest.raises(CorruptShardError, match=r"shard corrupt: .*shard-00001\.npy"):
        ds.images([9])
    path.write_bytes(bytes(data[:-3000]))
    with pytest.raises(CorruptShardError, match=r"truncated.*shard-00001\.npy"):
        ShardedDataset(broken).images([9])
    meta = shard_files(broken, 2)["meta"]
    meta.write_bytes(meta.read_bytes()[:-10])
    with pytest.raises(CorruptShardError, match=r"truncated.*shard-00002\.meta\.npy"):
        ShardedDataset(broken)


def test_output_of_another_spec_is_refused(reference, tmp_path):
    other = load_spec("syn1")
    with pytest.raises(SynfaceError, match="holds a different dataset"):
        generate_dataset(other, reference, progress=False)


def test_a_dataset_rendered_by_another_generator_version_is_not_resumed(tmp_path):
    from synface.datasets.build import prepare_output
    from synface.errors import SynfaceError

    spec = load_spec("demo")
    prepare_output(tmp_path / "d", spec)
    prepare_output(tmp_path / "d", spec)  # same version: fine
    (tmp_path / "d" / "generator.txt").write_text("older\n")
    with pytest.raises(SynfaceError, match="rendered by generator 'older'"):
        prepare_output(tmp_path / "d", spec)


def test_the_builder_writes_the_validation_split_that_training_only_opens(reference, tmp_path):
    from synface.datasets.build import VALIDATION_SPLIT, generate_validation_split
    from synface.datasets.spec import read_spec
    from synface.train.config import load_train_config
    from synface.train.loop import Trainer

    root = tmp_path / "data"
    shutil.copytree(reference, root)
    folder = generate_validation_split(root, identities=3, samples=2)
    assert folder == root / VALIDATION_SPLIT
    split, train = read_spec(folder), read_spec(root)
    assert (split.namespace, split.mixup, split.identities, split.samples) == ("validation", "none", 3, 2)
    assert (split.appearance, split.sampler, split.size) == (train.appearance, train.sampler, train.size)
    first = tree_bytes(folder)
    assert generate_validation_split(root, identities=3, samples=2) == folder and tree_bytes(folder) == first
    generate_validation_split(root, identities=4, samples=2)  # another size: replaced, not refused
    assert read_spec(folder).identities == 4 and len(ShardedDataset(folder)) == 8
    assert generate_validation_split(root, identities=0) is None  # off
    cfg = load_train_config("cpu", {"compile": False, "amp": False, "batch_size": 8, "workers": 0, "optim.epochs": 1,
                                    "optim.milestones": [0.5], "validation.identities": 4, "validation.samples": 2})
    summary = Trainer(cfg, root, tmp_path / "run", progress=False).run()
    assert summary["val_accuracy"] is not None and not (tmp_path / "run" / "validation-data").exists()
    shutil.rmtree(folder)
    summary = Trainer(cfg, root, tmp_path / "run2", progress=False).run()
    assert summary["val_accuracy"] is None  # no split: trains without, renders nothing itself
    assert read_spec(tmp_path / "run2") is None and not (root / VALIDATION_SPLIT).exists()
