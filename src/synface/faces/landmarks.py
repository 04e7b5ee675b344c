"""5-point landmark files: ``relative/path.jpg x1 y1 ... x5 y5`` per line (tabs or spaces)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from synface.errors import DataNotFoundError, SynfaceError

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Names a landmark file goes by beside its images (ours, and LFW's SphereFace file).
LANDMARK_FILE_NAMES = ("landmarks.txt", "lfw_landmark.txt")


def find_landmark_file(folder: str | Path, search_parent: bool = False) -> Path | None:
    """A landmark file in ``folder`` (or its parent: LFW keeps its file beside ``images/``)."""
    folder = Path(folder)
    for candidate in (folder, folder.parent) if search_parent else (folder,):
        for name in LANDMARK_FILE_NAMES:
            if (candidate / name).is_file():
                return candidate / name
    return None


def read_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """Parse a landmark file into {relative path: (5, 2) float array}."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"landmark file not found: {path}")
    table: dict[str, np.ndarray] = {}
    # Ordinary variations: a BOM, CRLF line ends, commas or tabs between values, # comments.
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.lstrip().startswith("#"):
                continue
            fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
            if not fields:
                continue
            if len(fields) != 11:
                raise SynfaceError(f"{path}:{lineno}: expected a path and 10 numbers, got {len(fields)} fields")
            try:
                table[fields[0]] = np.array([float(v) for v in fields[1:]], dtype=np.float64).reshape(5, 2)
            except ValueError:
                raise SynfaceError(f"{path}:{lineno}: landmark values must be numbers") from None
    return table


def write_landmarks(path: str | Path, table: dict[str, np.ndarray]) -> None:
    """Write {relative path: (5, 2)} in the same format, sorted by path, atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as fh:
        for rel in sorted(table):
            values = "\t".join(f"{v:.2f}" for v in np.asarray(table[rel]).reshape(-1))
            fh.write(f"{rel}\t{values}\n")
    tmp.replace(path)
