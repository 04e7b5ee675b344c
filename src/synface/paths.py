"""Where data, caches and runs live; the only place that reads SYNFACE_* variables."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from synface.errors import DataNotFoundError, cannot_write


def data_root() -> Path:
    """The shared data folder (LFW, celeba-299, face models) named by ``SYNFACE_DATA``."""
    value = os.environ.get("SYNFACE_DATA")
    if not value:
        raise DataNotFoundError(
            "SYNFACE_DATA is not set: point it at the shared data folder "
            "(the one holding lfw/, celeba-299/ and facemodels/)"
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"SYNFACE_DATA={value} is not a folder")
    return root


def data_path(*parts: str) -> Path:
    """A path inside the data root that must exist."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        raise DataNotFoundError(f"missing data: {path}")
    return path


def cache_root() -> Path:
    """Git-ignored folder for derived data (aligned crops); ``SYNFACE_CACHE`` overrides."""
    root = Path(os.environ.get("SYNFACE_CACHE", "cache")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def config_dir(kind: str) -> Path:
    """The packaged configs of ``kind`` (train, datasets, ab): package data under
    ``synface/configs/``, found through importlib.resources, so an installed wheel has them
    as a source checkout does."""
    from importlib.resources import files

    folder = Path(str(files("synface").joinpath("configs", kind)))
    if not folder.is_dir():
        raise DataNotFoundError(f"packaged configs missing: {folder} (a broken install?)")
    return folder


@contextmanager
def atomic_file(path: Path, mode: str = "wb", kept: str = "files written before it are intact"):
    """An open file that becomes ``path`` only when the block ends without error (written to
    ``path.tmp``, fsynced, renamed); on a failed write the temporary file goes and the error
    names ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **({"newline": ""} if "b" not in mode else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError as exc:
        raise cannot_write(path, exc, tmp, kept=kept) from None
