"""insightface's training format without mxnet: ``train.rec`` / ``train.idx`` / ``property``.

MXNet RecordIO, as ``mx.recordio.MXIndexedRecordIO`` writes it and arcface_torch's
``MXFaceDataset`` reads it:

- a record is ``uint32 magic 0xced7230a``, ``uint32 lrecord`` (top 3 bits: continuation flag,
  0 for a whole record; low 29 bits: the payload length), the payload, zero padding to a
  multiple of 4 bytes;
- a payload is an ``IRHeader`` (``struct 'IfQQ'``: flag, label, id, id2; 24 bytes, little
  endian), then ``flag`` float32 labels when flag > 0, then the encoded image;
- ``train.idx`` holds ``key\\toffset`` per record; record 0 is the header record: flag 2,
  labels (N + 1, N + 1 + C) for N images and C identities, so readers take images 1..N;
  records N + 1 .. N + C give each identity's image range [start, end);
- ``property`` is ``C,112,112``.

Images are the 112x112 ArcFace crops insightface trains on. Our 112x96 crops are the middle 96
columns of that crop; exporting them pads 8 columns each side by repeating the edge (the
padding is not face).
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from synface.errors import DataNotFoundError, SynfaceError, cannot_write
from synface.faces.align import decode_arcface_112

MAGIC = 0xCED7230A
_HEADER = struct.Struct("<IfQQ")
_RECORD = struct.Struct("<II")


def pack_record(flag: int, labels: float | list[float], key: int, image: bytes = b"", id2: int = 0) -> bytes:
    """One IRHeader payload: a scalar label (flag 0) or ``flag`` float labels after it."""
    if flag == 0:
        return _HEADER.pack(0, float(labels), key, id2) + image
    labels = np.asarray(labels, np.float32)
    if len(labels) != flag:
        raise ValueError(f"flag {flag} needs {flag} labels, got {len(labels)}")
    return _HEADER.pack(flag, 0.0, key, id2) + labels.tobytes() + image


def unpack_record(payload: bytes) -> tuple[int, np.ndarray | float, int, bytes]:
    """(flag, label(s), id, image bytes) of one payload."""
    flag, label, key, _ = _HEADER.unpack_from(payload)
    body = payload[_HEADER.size :]
    if flag > 0:
        labels = np.frombuffer(body[: 4 * flag], np.float32).copy()
        return flag, labels, key, body[4 * flag :]
    return flag, label, key, body


class RecordWriter:
    """Appends whole records to ``.rec`` and their offsets to ``.idx``."""

    def __init__(self, rec: Path, idx: Path) -> None:
        self.rec_path, self.idx_path = rec, idx
        self.rec = open(rec, "wb")
        self.idx = open(idx, "w")

    def write(self, key: int, payload: bytes) -> None:
        if len(payload) >= 1 << 29:
            raise SynfaceError(f"record {key} is too large for RecordIO ({len(payload)} bytes)")
        self.idx.write(f"{key}\t{self.rec.tell()}\n")
        self.rec.write(_RECORD.pack(MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4))

    def close(self) -> None:
        self.rec.close()
        self.idx.close()


def read_index(idx: Path) -> dict[int, int]:
    table = {}
    for lineno, line in enumerate(idx.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            key, offset = line.split("\t")
            table[int(key)] = int(offset)
        except ValueError:
            raise SynfaceError(f"{idx}:{lineno}: expected 'key<TAB>offset'") from None
    return table


def read_record(fh, offset: int, where: str) -> bytes:
    fh.seek(offset)
    head = fh.read(8)
    if len(head) < 8:
        raise SynfaceError(f"{where}: truncated record at byte {offset}")
    magic, lrecord = _RECORD.unpack(head)
    if magic != MAGIC:
        raise SynfaceError(f"{where}: no RecordIO record at byte {offset} (bad magic {magic:#x})")
    if lrecord >> 29:
        raise SynfaceError(f"{where}: multi-part record at byte {offset} is not supported")
    payload = fh.read(lrecord & ((1 << 29) - 1))
    if len(payload) != lrecord & ((1 << 29) - 1):
        raise SynfaceError(f"{where}: truncated record at byte {offset}")
    return payload


def to_arcface_112(image: np.ndarray) -> np.ndarray:
    """A crop of ours as insightface's 112x112: 112x112 as is, 112x96 padded 8 columns each side."""
    h, w = image.shape[:2]
    if (h, w) == (112, 112):
        return image
    if (h, w) == (112, 96):
        return cv2.copyMakeBorder(image, 0, 0, 8, 8, cv2.BORDER_REPLICATE)
    raise SynfaceError(f"insightface trains on 112x112 crops; this dataset is {h}x{w} (generate it at 112x112 or 112x96)")


def export_insightface(ds, out: str | Path, image_format: str = "jpg", quality: int = 95, progress: bool = True) -> dict:
    """Write a stored dataset as ``out/train.rec``, ``train.idx`` and ``property`` (images
    grouped by identity, as insightface's im2rec does). A mixed image goes under its primary
    class (RecordIO labels are hard)."""
    if image_format not in ("jpg", "png"):
        raise SynfaceError(f"image format must be jpg or png, got {image_format!r}")
    out = Path(out)
    order = np.argsort(ds.labels, kind="stable")
    labels = ds.labels[order]
    classes = int(ds.num_classes)
    n = len(order)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    try:
        out.mkdir(parents=True, exist_ok=True)
        writer = RecordWriter(out / "train.rec.tmp", out / "train.idx.tmp")
        writer.write(0, pack_record(2, [n + 1, n + 1 + classes], 0))
        for start in tqdm(range(0, n, 256), desc="export insightface", unit="batch", disable=not progress):
            rows = order[start : start + 256]
            for k, (i, image) in enumerate(zip(rows, ds.images(rows))):
                ok, encoded = cv2.imencode(f".{image_format}", np.ascontiguousarray(to_arcface_112(image)[..., ::-1]),
                                           params)
                key = start + k + 1
                writer.write(key, pack_record(0, float(ds.labels[i]), key, encoded.tobytes()))
        bounds = np.searchsorted(labels, np.arange(classes + 1)) + 1  # images of class c: [bounds[c], bounds[c+1])
        for c in range(classes):
            writer.write(n + 1 + c, pack_record(2, [bounds[c], bounds[c + 1]], n + 1 + c))
        writer.close()
        (out / "train.rec.tmp").replace(out / "train.rec")
        (out / "train.idx.tmp").replace(out / "train.idx")
        (out / "property").write_text(f"{classes},112,112\n")
    except OSError as exc:
        raise cannot_write(out, exc, out / "train.rec.tmp") from None
    return {"images": n, "classes": classes, "out": str(out)}


def is_insightface_folder(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / "train.rec").is_file() and (folder / "train.idx").is_file()


def read_insightface(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(crops (N, 112, 112, 3) uint8 RGB, labels (N,) int64) of an insightface training folder,
    in record order, as arcface_torch's MXFaceDataset reads them."""
    folder = Path(folder)
    rec, idx = folder / "train.rec", folder / "train.idx"
    if not is_insightface_folder(folder):
        raise DataNotFoundError(f"no insightface training set (train.rec + train.idx) in {folder}")
    index = read_index(idx)
    with open(rec, "rb") as fh:
        flag, header, _, _ = unpack_record(read_record(fh, index.get(0, 0), str(rec)))
        keys = range(1, int(header[0])) if flag > 0 else sorted(k for k in index if k > 0)
        crops = np.empty((len(keys), 112, 112, 3), np.uint8)
        labels = np.empty(len(keys), np.int64)
        for n, key in enumerate(tqdm(keys, desc=f"read {folder.name}", unit="img", leave=False)):
            if key not in index:
                raise SynfaceError(f"{idx}: record {key} is missing (a half-converted .rec?)")
            _, label, _, image = unpack_record(read_record(fh, index[key], str(rec)))
            crops[n] = decode_arcface_112(image, f"{rec}: record {key}")
            labels[n] = int(label if np.isscalar(label) else label[0])
    return crops, labels
