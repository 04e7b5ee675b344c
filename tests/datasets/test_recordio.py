"""insightface's RecordIO training format (issue 20): byte layout, round trip, import."""

import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from synface.cli import app
from synface.datasets.real import import_identity_folder
from synface.datasets.recordio import MAGIC, export_insightface, read_index, read_insightface, unpack_record
from synface.datasets.storage import ShardedDataset
from synface.errors import SynfaceError

runner = CliRunner()


def records(rec: bytes):
    """Walk a .rec by the RecordIO specification alone: magic, lrecord, payload, 4-byte padding."""
    offset, out = 0, []
    while offset < len(rec):
        magic, lrecord = struct.unpack_from("<II", rec, offset)
        assert magic == MAGIC and lrecord >> 29 == 0
        length = lrecord & ((1 << 29) - 1)
        out.append((offset, rec[offset + 8 : offset + 8 + length]))
        offset += 8 + length + (-length % 4)
    assert offset == len(rec)
    return out


def test_export_writes_recordio_as_mxnet_does_and_reads_back_the_same_images(tiny_synthetic, tmp_path):
    ds = ShardedDataset(tiny_synthetic)
    out = tmp_path / "rec"
    result = runner.invoke(app, ["export", str(tiny_synthetic), "--out", str(out), "--format", "insightface",
                                 "--image-format", "png"])
    assert result.exit_code == 0, result.output
    assert (out / "property").read_text() == f"{ds.num_classes},112,112\n"
    walked = records((out / "train.rec").read_bytes())
    n, c = len(ds), ds.num_classes
    assert len(walked) == 1 + n + c
    assert read_index(out / "train.idx") == {k: offset for k, (offset, _) in enumerate(walked)}
    flag, label, key, id2 = struct.unpack_from("<IfQQ", walked[0][1])  # IRHeader
    assert (flag, key) == (2, 0) and np.frombuffer(walked[0][1][24:32], np.float32).tolist() == [n + 1, n + 1 + c]
    flag, label, key, _ = struct.unpack_from("<IfQQ", walked[1][1])
    assert flag == 0 and key == 1 and label == float(np.sort(ds.labels)[0])
    assert walked[1][1][24:28] == b"\x89PNG"
    _, bounds, _, _ = unpack_record(walked[n + 1][1])
    assert bounds.tolist() == [1, 1 + int((ds.labels == 0).sum())]
    crops, labels = read_insightface(out)
    order = np.argsort(ds.labels, kind="stable")
    assert np.array_equal(labels, ds.labels[order])
    assert np.array_equal(crops[:, :, 8:104], ds.images(order))  # 112x96 = the middle of 112x112
    imported = tmp_path / "imported"
    info = import_identity_folder(out, imported)  # import-real reads insightface folders too
    back = ShardedDataset(imported)
    assert info["num_images"] == n and np.array_equal(back.images(np.arange(n)), ds.images(order))
    assert np.array_equal(back.labels, ds.labels[order])


def test_jpeg_export_is_close_and_a_half_converted_rec_is_named(tiny_synthetic, tmp_path):
    ds = ShardedDataset(tiny_synthetic)
    out = tmp_path / "rec"
    export_insightface(ds, out, progress=False)
    crops, _ = read_insightface(out)
    order = np.argsort(ds.labels, kind="stable")
    error = np.abs(crops[:, :, 8:104].astype(int) - ds.images(order)).mean()
    assert error < 3.0  # JPEG at quality 95
    rec = (out / "train.rec").read_bytes()
    (out / "train.rec").write_bytes(rec[: len(rec) // 2])  # a conversion that stopped half-way
    with pytest.raises(SynfaceError, match="truncated record|no RecordIO record"):
        read_insightface(out)
