"""From raw images to aligned crops: known landmarks where a file gives them, MTCNN elsewhere.

Two front ends share this: ``align_folder`` (``synface align``) writes crops and skips bad
images with a reason; ``aligned_crops`` (evaluation, training) returns one array, cached on
disk, and fails on an unreadable image because a benchmark with a hole in it is no benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from synface.errors import ImageReadError, SynfaceError
from synface.faces.align import align_face, alignment_matrix, transform_points
from synface.faces.landmarks import find_landmark_file, read_landmarks, write_landmarks
from synface.faces.templates import parse_size, template
from synface.imageio import read_rgb, write_image
from synface.locks import folder_lock
from synface.paths import cache_root

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# Bump when alignment output changes, so caches made by older code are not reused.
ALIGNMENT_VERSION = 1
_DETECT_CHUNK = 64


@dataclass
class AlignedFace:
    path: str  # relative to the source root
    crop: np.ndarray | None  # (h, w, 3) uint8, None when skipped
    landmarks: np.ndarray | None  # (5, 2) in the source image
    source: str  # "file", "mtcnn", "fallback" (whole frame), or "skipped"
    reason: str = ""


@dataclass
class AlignmentReport:
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, face: AlignedFace) -> None:
        self.counts[face.source] = self.counts.get(face.source, 0) + 1
        if face.source == "skipped":
            self.skipped.append((face.path, face.reason))


class _LazyDetector:
    """Builds MTCNN on first use: aligning LFW from its landmark file never loads it."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._mtcnn = None

    def __call__(self, images: list[np.ndarray]):
        if self._mtcnn is None:
            from synface.faces.mtcnn import MTCNN

            self._mtcnn = MTCNN().to(self.device)
        return self._mtcnn.detect(images)


def iter_aligned(
    root: Path,
    paths: list[str],
    size: tuple[int, int],
    landmarks: dict[str, np.ndarray] | None = None,
    grayscale: bool = False,
    strict: bool = True,
    no_face: str = "skip",
    device: str = "cpu",
    desc: str = "align",
) -> Iterator[AlignedFace]:
    """Align ``paths`` (relative to ``root``) in order.

    strict: an unreadable image raises (else it is skipped with the reason).
    no_face: "skip" or "fallback" (treat the whole frame as a loose face crop and map the
    template onto it), for images without known landmarks where MTCNN finds no face.
    """
    landmarks = landmarks or {}
    detect = _LazyDetector(device)
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False) as bar:
        for start in range(0, len(paths), _DETECT_CHUNK):
            chunk = paths[start : start + _DETECT_CHUNK]
            images: dict[str, np.ndarray] = {}
            faces: dict[str, AlignedFace] = {}
            for rel in chunk:
                try:
                    images[rel] = read_rgb(root / rel, grayscale=grayscale)
                except (ImageReadError, FileNotFoundError) as exc:
                    if strict:
                        raise
                    faces[rel] = AlignedFace(rel, None, None, "skipped", str(exc))
            to_detect = [rel for rel in images if rel not in landmarks]
            if to_detect:
                for rel, det in zip(to_detect, detect([images[rel] for rel in to_detect])):
                    k = det.main_face(images[rel].shape)
                    if k is not None:
                        faces[rel] = _aligned(rel, images[rel], det.landmarks[k], "mtcnn", size)
                    elif no_face == "fallback":
                        faces[rel] = _aligned(rel, images[rel], _whole_frame(images[rel].shape), "fallback", size)
                    else:
                        faces[rel] = AlignedFace(rel, None, None, "skipped", "no face detected")
            for rel in images:
                if rel in landmarks:
                    faces[rel] = _aligned(rel, images[rel], landmarks[rel], "file", size)
            for rel in chunk:
                yield faces[rel]
            bar.update(len(chunk))


def _aligned(rel: str, image: np.ndarray, points: np.ndarray, source: str, size: tuple[int, int]) -> AlignedFace:
    return AlignedFace(rel, align_face(image, points, size), np.asarray(points, dtype=np.float64), source)


def _whole_frame(shape: tuple[int, ...]) -> np.ndarray:
    """Landmarks as if the image were already a centred 1:1 face crop (the 112x112 layout)."""
    h, w = shape[:2]
    side = min(h, w)
    pts = template((side, side))
    pts[:, 0] += (w - side) / 2
    pts[:, 1] += (h - side) / 2
    return pts


def list_images(root: Path) -> list[str]:
    """Image files under ``root``, relative, sorted."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def align_folder(
    src: str | Path,
    dst: str | Path,
    size: str | tuple[int, int] = (112, 96),
    landmarks_file: str | Path | None = None,
    grayscale: bool = False,
    device: str = "cpu",
    suffix: str = ".png",
) -> AlignmentReport:
    """Detect (or look up) and align every image under ``src`` into ``dst``, same tree.

    Writes ``dst/landmarks.txt`` (the 5 points in crop coordinates), ``dst/source_landmarks.txt``
    (in the source images) and ``dst/skipped.txt`` (path and reason).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise SynfaceError(f"source folder not found: {src}")
    h, w = parse_size(size)
    paths = list_images(src)
    if not paths:
        raise SynfaceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {src}")
    lm_path = Path(landmarks_file) if landmarks_file else find_landmark_file(src, search_parent=True)
    known = read_landmarks(lm_path) if lm_path else {}
    report = AlignmentReport()
    crop_points: dict[str, np.ndarray] = {}
    source_points: dict[str, np.ndarray] = {}
    names = crop_names(paths, suffix)
    with folder_lock(dst, "its crops"):
        for face in iter_aligned(src, paths, (h, w), known, grayscale, strict=False, device=device):
            report.add(face)
            if face.crop is None:
                continue
            out_rel = names[face.path]
            write_image(dst / out_rel, face.crop)
            source_points[face.path] = face.landmarks
            crop_points[out_rel] = transform_points(alignment_matrix(face.landmarks, (h, w)), face.landmarks)
        write_landmarks(dst / "landmarks.txt", crop_points)
        write_landmarks(dst / "source_landmarks.txt", source_points)
        (dst / "skipped.txt").write_text("".join(f"{p}\t{r}\n" for p, r in report.skipped))
    return report


def crop_names(paths: list[str], suffix: str) -> dict[str, str]:
    """Output name of each source image: its path with ``suffix``, except where two sources
    would share one (``face.jpg`` and ``face.png``): those keep their own extension too
    (``face.jpg.png``, ``face.png.png``), so no crop overwrites another."""
    plain = {rel: str(Path(rel).with_suffix(suffix)) for rel in paths}
    taken: dict[str, int] = {}
    for name in plain.values():
        taken[name] = taken.get(name, 0) + 1
    return {rel: name if taken[name] == 1 else rel + suffix for rel, name in plain.items()}


def aligned_crops(
    root: Path,
    paths: list[str],
    size: str | tuple[int, int],
    landmarks_file: Path | None = None,
    grayscale: bool = False,
    device: str = "cpu",
    desc: str = "align",
    strict: bool = True,
) -> tuple[np.ndarray, dict]:
    """All ``paths`` aligned into one (N, h, w, 3) uint8 array, cached under ``cache/aligned``.

    The cache key covers the image list, the landmark file, size, grayscale and the
    alignment code version; a second call with the same inputs only reads the cache.
    Images where neither the file nor MTCNN gives a face use the whole-frame fallback.
    ``strict=False``: unreadable images are left out of the array (which then has fewer
    rows) and listed, with the reason, under the counts' ``skipped_images``.
    """
    h, w = parse_size(size)
    key = _cache_key(root, paths, landmarks_file, (h, w), grayscale) + ("" if strict else "-lenient")
    folder = cache_root() / "aligned"
    array_path, meta_path = folder / f"{key}.npy", folder / f"{key}.json"
    if array_path.is_file() and meta_path.is_file():
        crops = np.load(array_path, mmap_mode="r")
        counts = json.loads(meta_path.read_text())["counts"]
        if crops.shape == (len(paths) - len(counts.get("skipped_images", [])), h, w, 3):
            return crops, counts
    known = read_landmarks(landmarks_file) if landmarks_file else {}
    crops = np.empty((len(paths), h, w, 3), dtype=np.uint8)
    kept = np.ones(len(paths), bool)
    report = AlignmentReport()
    for i, face in enumerate(
        iter_aligned(root, paths, (h, w), known, grayscale, strict=strict, no_face="fallback", device=device, desc=desc)
    ):
        report.add(face)
        if face.crop is None:
            kept[i] = False
        else:
            crops[i] = face.crop
    counts = dict(report.counts)
    if not strict:
        crops = crops[kept]
        counts["skipped_images"] = [list(item) for item in report.skipped]
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save(array_path, crops)
    meta_path.write_text(json.dumps({"root": str(root), "size": [h, w], "counts": counts}))
    return crops, counts


def _cache_key(
    root: Path, paths: list[str], landmarks_file: Path | None, size: tuple[int, int], grayscale: bool
) -> str:
    digest = hashlib.sha1()
    digest.update(json.dumps([str(Path(root).resolve()), size, grayscale, ALIGNMENT_VERSION]).encode())
    digest.update("\n".join(paths).encode())
    if landmarks_file is not None:
        digest.update(Path(landmarks_file).read_bytes())
    return digest.hexdigest()[:16]


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        np.save(fh, array)
    tmp.replace(path)
