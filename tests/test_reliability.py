"""Loses nothing, refuses clearly (issue 22): one test per numbered item of the issue."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synface.cli import app
from synface.config import ConfigError
from synface.datasets.build import generate_dataset, merge_datasets
from synface.datasets.spec import DatasetSpec
from synface.datasets.storage import ShardedDataset, shard_files, verify_dataset
from synface.errors import FolderInUseError, OutputWriteError, SynfaceError
from synface.locks import LOCK_NAME, folder_lock
from synface.train.config import load_train_config
from synface.train.loop import CHECKPOINT, Trainer

runner = CliRunner()
SRC = str(Path(__file__).resolve().parents[1] / "src")
FAST = {
    "backbone": "mobilefacenet", "input_size": "56x48", "batch_size": 8, "compile": False, "amp": False,
    "workers": 0, "validation.identities": 0, "log_every": 1, "optim.epochs": 1, "optim.milestones": [0.5],
}
SPEC = DatasetSpec(name="tiny", identities=6, samples=4, mixup="syn3", shard_size=8)


def trainer(data, out, **extra):
    return Trainer(load_train_config("cpu", {**FAST, **extra}), data, out, progress=False)


def said(result, text: str) -> bool:
    """Whether the command's output holds ``text`` (rich wraps long lines anywhere)."""
    return "".join(text.split()) in "".join(result.output.split())


def flip_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture()
def dataset(tmp_path, data_root):
    out = tmp_path / "data"
    generate_dataset(SPEC, out, progress=False)
    return out


# 1 -----------------------------------------------------------------------------------------
def test_training_into_a_folder_that_holds_a_run_is_refused(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    trainer(tiny_synthetic, out).run()
    before = (out / CHECKPOINT).read_bytes()
    with pytest.raises(SynfaceError, match=r"holds a run at step 4 .*--resume.*--overwrite"):
        trainer(tiny_synthetic, out).run()
    assert (out / CHECKPOINT).read_bytes() == before
    result = runner.invoke(app, ["train", "cpu", "--data", str(tiny_synthetic), "--out", str(out),
                                 *sum((["--set", f"{k}={json.dumps(v)}"] for k, v in FAST.items()), [])])
    assert result.exit_code == 2 and said(result, "--resume to continue it, or --overwrite")
    assert trainer(tiny_synthetic, out, **{"optim.epochs": 2, "optim.milestones": [1.0]}).run(overwrite=True)["steps"] == 8


# 2 -----------------------------------------------------------------------------------------
def test_damaged_shards_are_found_named_and_rendered_again(dataset, tmp_path):
    clean = (shard_files(dataset, 1)["images"]).read_bytes()
    flip_byte(shard_files(dataset, 1)["images"])
    shard_files(dataset, 2)["meta"].unlink()
    report = verify_dataset(dataset)
    assert [k for k, _ in report["damaged"]] == [1, 2] and "CRC-32" in report["damaged"][0][1]
    for command in (["verify", str(dataset)], ["stats", str(dataset), "--out", str(tmp_path / "stats")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and said(result, "shard 1: shard-00001.npy fails its CRC-32 check")
        assert said(result, "shard 2: shard-00002.meta.npy missing")
    with pytest.raises(SynfaceError, match="shard 1 is damaged"):
        merge_datasets([dataset], tmp_path / "merged")
    summary = generate_dataset(SPEC, dataset, progress=False)
    assert summary["made"] == 2 and summary["repaired"] == 2 and summary["complete"]
    assert shard_files(dataset, 1)["images"].read_bytes() == clean
    assert runner.invoke(app, ["verify", str(dataset)]).exit_code == 0


# 3 -----------------------------------------------------------------------------------------
def test_a_folder_has_one_writer_and_a_dead_holder_leaves_no_lock(tmp_path, tiny_synthetic):
    folder = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from synface.locks import folder_lock\n"
        "with folder_lock(sys.argv[2]):\n    print('held', flush=True); time.sleep(60)"), SRC, str(folder)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    try:
        with pytest.raises(FolderInUseError, match=rf"in use by pid {holder.pid} on .*since"):
            with folder_lock(folder):
                pass
        with pytest.raises(FolderInUseError):
            generate_dataset(SPEC, folder, progress=False)
        with pytest.raises(FolderInUseError):
            trainer(tiny_synthetic, folder).run()
        assert not (folder / CHECKPOINT).exists() and not (folder / "spec.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == holder.pid  # what a SIGKILL leaves
    with folder_lock(folder):  # ... is stale: taken over
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
        with folder_lock(folder):  # re-entrant within a process
            pass
    assert (folder / LOCK_NAME).read_text() == ""


# 4 -----------------------------------------------------------------------------------------
def test_resuming_on_other_data_of_the_same_class_count_is_refused(tiny_synthetic, tmp_path, data_root):
    other = tmp_path / "other"
    generate_dataset(DatasetSpec(name="tiny", identities=8, samples=4, mixup="syn3", shard_size=16, seed=5), other,
                     progress=False)
    out = tmp_path / "run"
    trainer(tiny_synthetic, out).run(stop_at_step=2)
    with pytest.raises(SynfaceError, match="other synthetic data.*must see the dataset it started on"):
        trainer(other, out).run(resume=True)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_synthetic, copy)  # the same data elsewhere is the same data
    assert trainer(copy, out).run(resume=True)["steps"] == 4


# 5 -----------------------------------------------------------------------------------------
def test_a_refused_resume_writes_nothing(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    trainer(tiny_synthetic, out).run(stop_at_step=2)
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(SynfaceError, match="another config"):
        trainer(tiny_synthetic, out, **{"optim.lr": 0.5}).run(resume=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files
    empty = tmp_path / "empty"
    with pytest.raises(SynfaceError, match="nothing to resume"):
        trainer(tiny_synthetic, empty).run(resume=True)
    assert not (empty / "config.yaml").exists()


# 6 -----------------------------------------------------------------------------------------
def test_import_real_skips_and_lists_an_unreadable_image(data_root, tmp_path):
    from synface.datasets.real import import_identity_folder

    src = tmp_path / "people"
    people = sorted(p.name for p in (data_root / "celeba-299").iterdir() if p.is_dir())[:2]
    lines = []
    for person in people:
        (src / person).mkdir(parents=True)
        for image in sorted((data_root / "celeba-299" / person).iterdir())[:3]:
            shutil.copy(image, src / person / image.name)
            lines.append(f"{person}/{image.name}")
    table = dict(line.split(" ", 1) for line in (data_root / "celeba-299" / "landmarks.txt").read_text().splitlines())
    (src / "landmarks.txt").write_text("".join(f"{rel} {table[rel]}\n" for rel in lines))
    broken = src / lines[1]
    broken.write_bytes(broken.read_bytes()[:200])
    info = import_identity_folder(src, tmp_path / "imported")
    assert info["num_images"] == 5 and info["num_classes"] == 2
    assert [s["path"] for s in info["skipped"]] == [lines[1]]
    assert len(ShardedDataset(tmp_path / "imported")) == 5


# 7 -----------------------------------------------------------------------------------------
def test_align_keeps_both_crops_when_jpg_and_png_share_a_name(lfw_root, tmp_path):
    from PIL import Image

    src = tmp_path / "src" / "person"
    src.mkdir(parents=True)
    people = sorted(p for p in (lfw_root / "images").iterdir())[:2]
    shutil.copy(next(people[0].iterdir()), src / "face.jpg")
    Image.open(next(people[1].iterdir())).save(src / "face.png")
    result = runner.invoke(app, ["align", str(tmp_path / "src"), str(tmp_path / "dst"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    crops = sorted(p.name for p in (tmp_path / "dst" / "person").iterdir())
    assert crops == ["face.jpg.png", "face.png.png"]
    a, b = (np.asarray(Image.open(tmp_path / "dst" / "person" / c)) for c in crops)
    assert not np.array_equal(a, b)


# 8 -----------------------------------------------------------------------------------------
def test_error_messages_keep_their_brackets(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nidentities: 2\nsamples: 2\nmixup: [1.5, 0.2]\n")
    result = runner.invoke(app, ["generate", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert said(result, "must lie in [0, 1], got [1.5, 0.2]")
    assert not (tmp_path / "out").exists()  # nothing written before validation passes


# 9 -----------------------------------------------------------------------------------------
def test_bad_values_are_refused_up_front_naming_the_key(tmp_path, tiny_synthetic):
    with pytest.raises(ConfigError, match=r"optim\.lr: expected a finite number, got nan"):
        load_train_config("cpu", {"optim.lr": float("nan")})
    for bad, message in ((({"optim.lr": -0.1}), "lr must be > 0"), ({"backbone": "resnet9"}, "unknown backbone"),
                         ({"optim.milestones": [5, 3]}, "positive and ascending"),
                         ({"domain_mixup": [1.5]}, r"must lie in \[0, 1\]"), ({"input_size": "12x"}, "HEIGHTxWIDTH"),
                         ({"validation.every_epochs": 0}, "every_epochs >= 1"), ({"time_budget_min": 0}, "> 0")):
        with pytest.raises(ConfigError, match=message):
            load_train_config("cpu", bad)
    spec = tmp_path / "inf.yaml"
    spec.write_text("name: inf\nidentities: 2\nsamples: 2\nsampler: {yaw_std_deg: .inf}\n")
    result = runner.invoke(app, ["generate", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and said(result, "inf.yaml.sampler.yaw_std_deg: expected a finite number, got inf")
    assert not (tmp_path / "out").exists()
    result = runner.invoke(app, ["train", "cpu", "--data", str(tiny_synthetic), "--out", str(tmp_path / "run"),
                                 "--resume", "--overwrite"])
    assert result.exit_code == 2 and said(result, "exclude each other") and not (tmp_path / "run").exists()


# 10 ----------------------------------------------------------------------------------------
def test_a_full_or_read_only_disk_gives_one_clear_message_and_keeps_the_last_checkpoint(
        tiny_synthetic, tmp_path, monkeypatch):
    import torch

    out = tmp_path / "run"
    first = trainer(tiny_synthetic, out)
    first.run(stop_at_step=2)
    before = (out / CHECKPOINT).read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OutputWriteError, match=r"cannot write .*checkpoint\.pt.*previous checkpoint .* is intact"):
        trainer(tiny_synthetic, out).run(resume=True)
    assert (out / CHECKPOINT).read_bytes() == before and not list(out.glob(".*.tmp"))
    monkeypatch.undo()

    import errno

    readonly = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def read_only_mkdir(self, *args, **kwargs):  # as a read-only mount answers (root ignores modes)
        if readonly in self.parents or self == readonly:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    result = runner.invoke(app, ["generate", "demo", "--out", str(readonly / "x"), "--width", "2", "--depth", "2"])
    assert result.exit_code == 2 and said(result, "cannot write") and said(result, "Read-only file system")
    assert "Traceback" not in result.output


def test_a_full_disk_while_writing_a_shard_leaves_no_partial_file(tmp_path, monkeypatch, data_root):
    import errno

    import synface.paths as paths  # where the shard writer's atomic_file lives

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(paths.os, "fsync", full)
    with pytest.raises(OutputWriteError, match=r"cannot write .*shard-00000\.npy: No space left on device \(the disk is full\)"):
        generate_dataset(SPEC, tmp_path / "data", progress=False)
    monkeypatch.setattr(paths.os, "fsync", real_fsync)
    assert not list((tmp_path / "data" / "shards").glob("*.tmp"))
    assert generate_dataset(SPEC, tmp_path / "data", progress=False)["complete"]


def test_damaged_dataset_json_and_checkpoints_are_named(dataset, tiny_synthetic, tmp_path):
    (dataset / "dataset.json").write_text('{"format": 1,\n "kind": ')
    with pytest.raises(SynfaceError, match=r"dataset\.json:2: not valid JSON"):
        ShardedDataset(dataset)
    (dataset / "dataset.json").write_text('{"format": 1, "kind": "synthetic"}')
    with pytest.raises(SynfaceError, match="missing num_images, num_classes, num_shards, size"):
        ShardedDataset(dataset)
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(SynfaceError, match=r"cannot resume from .*checkpoint\.pt: not a readable training checkpoint"):
        trainer(tiny_synthetic, out).run(resume=True)


def test_readers_tolerate_ordinary_format_variations_and_name_the_line(tmp_path):
    from synface.evaluate.pairs import load_lfw_pairs, load_pair_csv
    from synface.faces.landmarks import read_landmarks

    marks = tmp_path / "landmarks.txt"
    marks.write_bytes("\ufeff# x1 y1 ... x5 y5\r\na/1.jpg,1,2,3,4,5,6,7,8,9,10\r\n\r\nb/2.jpg\t1 2 3 4 5 6 7 8 9 10\n".encode())
    table = read_landmarks(marks)
    assert sorted(table) == ["a/1.jpg", "b/2.jpg"] and table["a/1.jpg"][4, 1] == 10.0
    marks.write_text("a/1.jpg 1 2 3\n")
    with pytest.raises(SynfaceError, match=r"landmarks\.txt:1: expected a path and 10 numbers"):
        read_landmarks(marks)
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_bytes("\ufefffold,path1,path2,same\r\n0,a.jpg,b.jpg,1\r\n1,a.jpg,c.jpg,false\r\n".encode())
    assert load_pair_csv(csv_file).same.tolist() == [True, False]
    lfw = tmp_path / "lfw"
    lfw.mkdir()
    (lfw / "pairs.txt").write_text("1 1\n\nA 1 2\nA 1 B x\n")
    with pytest.raises(SynfaceError, match=r"pairs\.txt:4: expected 'name n1 n2'"):
        load_lfw_pairs(lfw)
