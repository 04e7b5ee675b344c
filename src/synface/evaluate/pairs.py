"""Verification benchmarks as pair lists: LFW's ``pairs.txt``, a generic CSV format and
insightface's ``.bin`` validation sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin`` ...).

A benchmark names its images once (``images``) and its pairs as index pairs into that list,
so each image is aligned and embedded once however many pairs use it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from synface.errors import DataNotFoundError, SynfaceError
from synface.faces.landmarks import find_landmark_file
from synface.paths import data_path



@dataclass
class PairList:
    name: str
    image_root: Path
    images: list[str]  # relative to image_root
    pairs: np.ndarray  # (P, 2) int, indices into images
    same: np.ndarray  # (P,) bool
    folds: np.ndarray  # (P,) int, 0-based
    landmarks_file: Path | None  # 5-point landmarks of the raw images, if known
    # Already aligned 112x112 crops (ArcFace template), (N, 112, 112, 3) uint8: insightface
    # .bin sets ship these instead of raw images; ``images`` then only names them.
    crops: np.ndarray | None = None

    @property
    def num_folds(self) -> int:
        return int(self.folds.max()) + 1 if len(self.folds) else 0


class _Indexer:
    """Assigns each distinct image path one index, in order of first use."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, path: str) -> int:
        if path not in self._index:
            self._index[path] = len(self.paths)
            self.paths.append(path)
        return self._index[path]


def lfw_image_path(name: str, number: int, suffix: str = ".jpg") -> str:
    return f"{name}/{name}_{number:04d}{suffix}"


def _image_suffix(images: Path, first_name: str, first_number: int) -> str:
    """LFW ships JPEGs; Syn-LFW and re-encoded copies hold PNGs. The first pair decides."""
    for suffix in (".jpg", ".png", ".jpeg"):
        if (images / lfw_image_path(first_name, first_number, suffix)).is_file():
            return suffix
    for person in sorted(images.iterdir()) if images.is_dir() else []:
        for file in sorted(person.iterdir()) if person.is_dir() else []:
            return file.suffix
    return ".jpg"


def load_lfw_pairs(folder: str | Path, name: str = "lfw") -> PairList:
    """An LFW-layout benchmark: ``pairs.txt`` (view 2) plus ``images/Name/Name_000N.jpg``.

    Folds are consecutive blocks of matched-then-mismatched pairs as the header declares.
    """
    folder = Path(folder)
    pairs_file = folder / "pairs.txt"
    if not pairs_file.is_file():
        raise DataNotFoundError(f"pairs file not found: {pairs_file}")
    numbered = [(n, line.split()) for n, line in enumerate(pairs_file.read_text(encoding="utf-8-sig").splitlines(), 1)
                if line.strip()]
    try:
        num_folds, per_fold = (int(v) for v in numbered[0][1])
    except (IndexError, ValueError):
        raise SynfaceError(f"{pairs_file}: first line must be '<folds> <pairs per class per fold>'") from None
    linenos = [n for n, _ in numbered[1:]]
    body = [fields for _, fields in numbered[1:]]
    if len(body) != num_folds * per_fold * 2:
        raise SynfaceError(f"{pairs_file}: header promises {num_folds * per_fold * 2} pairs, found {len(body)}")
    index = _Indexer()
    pairs, same = [], []
    try:
        suffix = _image_suffix(folder / "images", body[0][0], int(body[0][1])) if body else ".jpg"
    except (IndexError, ValueError):
        suffix = ".jpg"
    for lineno, fields in zip(linenos, body):
        try:
            if len(fields) == 3:
                a = lfw_image_path(fields[0], int(fields[1]), suffix)
                b = lfw_image_path(fields[0], int(fields[2]), suffix)
                same.append(True)
            elif len(fields) == 4:
                a = lfw_image_path(fields[0], int(fields[1]), suffix)
                b = lfw_image_path(fields[2], int(fields[3]), suffix)
                same.append(False)
            else:
                raise ValueError
        except ValueError:
            raise SynfaceError(f"{pairs_file}:{lineno}: expected 'name n1 n2' or 'name1 n1 name2 n2'") from None
        pairs.append((index(a), index(b)))
    folds = np.repeat(np.arange(num_folds), 2 * per_fold)
    landmarks = find_landmark_file(folder)
    return PairList(
        name=name,
        image_root=folder / "images",
        images=index.paths,
        pairs=np.array(pairs, dtype=np.int64),
        same=np.array(same, dtype=bool),
        folds=folds,
        landmarks_file=landmarks,
    )


def load_pair_csv(path: str | Path) -> PairList:
    """A generic benchmark: CSV with header ``fold,path1,path2,same``, paths relative to it.

    Images are raw (detected with MTCNN) unless a ``landmarks.txt`` sits beside the CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"pairs CSV not found: {path}")
    index = _Indexer()
    pairs, same, folds = [], [], []
    with path.open(newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's BOM is no header error
        reader = csv.DictReader(fh)
        expected = ["fold", "path1", "path2", "same"]
        if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != expected:
            raise SynfaceError(f"{path}: header must be '{','.join(expected)}', got {reader.fieldnames}")
        for lineno, row in enumerate(reader, 2):
            try:
                folds.append(int(row["fold"]))
                flag = row["same"].strip().lower()
                if flag not in ("0", "1", "true", "false"):
                    raise ValueError
                same.append(flag in ("1", "true"))
            except (ValueError, AttributeError):
                raise SynfaceError(f"{path}:{lineno}: fold must be an integer and same 0/1/true/false") from None
            pairs.append((index(row["path1"].strip()), index(row["path2"].strip())))
    if not pairs:
        raise SynfaceError(f"{path}: no pairs")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise SynfaceError(f"{path}: need at least 2 folds to pick thresholds on held-out folds")
    # Renumber folds 0..K-1 whatever the file uses.
    folds_arr = np.searchsorted(fold_ids, np.array(folds))
    return PairList(
        name=path.stem,
        image_root=path.parent,
        images=index.paths,
        pairs=np.array(pairs, dtype=np.int64),
        same=np.array(same, dtype=bool),
        folds=folds_arr,
        landmarks_file=find_landmark_file(path.parent),
    )


NAMED_BENCHMARKS = {"lfw": ("lfw",)}


def load_benchmark(spec: str) -> PairList:
    """``lfw`` (from SYNFACE_DATA), a folder in LFW layout, or a pairs CSV."""
    if spec in NAMED_BENCHMARKS:
        return load_lfw_pairs(data_path(*NAMED_BENCHMARKS[spec]), name=spec)
    path = Path(spec)
    if path.is_dir() and (path / "pairs.txt").is_file():
        return load_lfw_pairs(path, name=path.name)
    if path.suffix.lower() == ".csv":
        return load_pair_csv(path)
    if path.suffix.lower() == ".bin":
        return load_insightface_bin(path)
    raise SynfaceError(
        f"unknown benchmark {spec!r}: use one of {', '.join(NAMED_BENCHMARKS)}, "
        "a folder holding pairs.txt and images/, a pairs CSV (fold,path1,path2,same) or an insightface .bin"
    )


def load_insightface_bin(path: str | Path, folds: int = 10) -> PairList:
    """An insightface validation set: a pickle of (encoded images, issame) where images 2i and
    2i + 1 form pair i, already aligned to the 112x112 ArcFace template. Folds are
    insightface's: ``folds`` consecutive blocks of pairs (sklearn's KFold without shuffling)."""
    import pickle

    from synface.faces.align import decode_arcface_112

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"insightface .bin benchmark not found: {path}")
    try:
        with path.open("rb") as fh:
            images, issame = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # pickle raises many types on a file that is not one
        raise SynfaceError(f"{path}: not an insightface .bin (a pickle of images and issame): {exc}") from None
    issame = np.asarray(list(issame), dtype=bool)
    if len(images) != 2 * len(issame) or not len(issame):
        raise SynfaceError(f"{path}: {len(images)} images for {len(issame)} pairs; expected two images a pair")
    crops = np.empty((len(images), 112, 112, 3), np.uint8)
    for i, data in enumerate(images):
        crops[i] = decode_arcface_112(data.tobytes() if isinstance(data, np.ndarray) else bytes(data), f"{path}: image {i}")
    pairs = np.arange(len(images)).reshape(-1, 2)
    fold_of = np.concatenate([np.full(len(block), k) for k, block in enumerate(np.array_split(np.arange(len(pairs)), folds))])
    return PairList(name=path.stem, image_root=path.parent, images=[f"{path.name}#{i}" for i in range(len(images))],
                    pairs=pairs, same=issame, folds=fold_of.astype(np.int64), landmarks_file=None, crops=crops)


def subset_pairs(bench: PairList, per_fold: int) -> PairList:
    """The first ``per_fold`` matched and the first ``per_fold`` mismatched pairs of every
    fold, with only the images they use: the same protocol in miniature (smoke runs). The
    choice depends on pair order alone, so LFW and Syn-LFW (one pairs.txt) pick alike."""
    keep = []
    for fold in range(bench.num_folds):
        for same in (True, False):
            keep.extend(np.flatnonzero((bench.folds == fold) & (bench.same == same))[:per_fold])
    keep = np.sort(np.array(keep, dtype=np.int64))
    used, inverse = np.unique(bench.pairs[keep], return_inverse=True)
    crops = bench.crops[used] if bench.crops is not None else None
    return replace(bench, images=[bench.images[i] for i in used], pairs=inverse.reshape(-1, 2),
                   same=bench.same[keep], folds=bench.folds[keep], crops=crops)
