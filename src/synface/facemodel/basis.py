"""The learned appearance basis on disk: its ``.npz`` format, the checks that it matches the
render mesh, and its fingerprint. Reading and hashing only: building it is
``facemodel/basis_builder.py``, choosing it per appearance mode ``facemodel/learned.py``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synface.errors import DataNotFoundError, SynfaceError
from synface.facemodel.appearance import atlas_size
from synface.facemodel.model import RenderMesh
from synface.paths import cache_root

FORMAT_VERSION = 2  # 2: every PCA component kept by default (1 kept 40)


def mesh_signature(mesh: RenderMesh, size: tuple[int, int]) -> str:
    """Changes whenever the texel layout would: the render mesh's UVs, its triangles (as a
    set: drawing order does not move texels) and the atlas size."""
    triangles = np.unique(np.sort(mesh.faces.numpy(), axis=1), axis=0)
    digest = hashlib.sha1(np.ascontiguousarray(mesh.uv).tobytes() + triangles.astype(np.int64).tobytes()
                          + np.array(size).tobytes())
    return digest.hexdigest()[:16]


class StaleBasisError(SynfaceError):
    """A basis file built for another render mesh, atlas or file format."""


def basis_is_current(path: Path, mesh: RenderMesh) -> bool:
    """Whether ``path`` was built by this format for this mesh (reads two small arrays)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return _matches(z, mesh, atlas_size())
    except (KeyError, ValueError, OSError, EOFError):
        return False


def _matches(npz, mesh: RenderMesh, size: tuple[int, int]) -> bool:
    return int(npz["format_version"]) == FORMAT_VERSION and str(npz["mesh_signature"]) == mesh_signature(mesh, size)


@dataclass
class LearnedBasis:
    """A built basis, read back: textures over ``texels`` of the atlas."""

    texels: np.ndarray
    mean: np.ndarray  # (T*3,)
    basis: np.ndarray  # (K, T*3), coefficient ~ N(0, 1)
    train_coefficients: np.ndarray  # (N, K)
    train_identities: np.ndarray
    variance: np.ndarray
    residual_basis: np.ndarray  # (R, T*3): within-person variation of single photos, coefficient ~ N(0, 1)
    # (N, S): each training person's fitted shape coefficients; only a landmarks68 basis has them.
    train_shapes: np.ndarray | None = None

    @classmethod
    def load(cls, path: str | Path, mesh: RenderMesh, size: tuple[int, int]) -> LearnedBasis:
        path = Path(path)
        hint = f"build it with `synface appearance build --real $SYNFACE_DATA/celeba-299 --out {path}`"
        if not path.is_file():
            raise DataNotFoundError(f"learned appearance basis not found: {path}; {hint}")
        try:
            with np.load(path, allow_pickle=False) as z:
                if not _matches(z, mesh, size):
                    raise StaleBasisError(f"{path} was built for another mesh or format; rebuild it: {hint}")
                return cls(z["texels"], z["mean"].astype(np.float64), z["basis"].astype(np.float64),
                           z["train_coefficients"], z["train_identities"], z["variance"],
                           z["residual_basis"].astype(np.float64),
                           z["train_shapes"] if "train_shapes" in z.files else None)
        except (KeyError, ValueError, OSError, EOFError) as exc:
            raise SynfaceError(f"{path} is not a readable appearance basis ({exc}); {hint}") from exc


# What a basis's photos are unwrapped onto (basis_builder.py): the mean face posed by the 5
# landmarks, or each person's own shape fitted to 68 (dlib's predictor, the ``judge`` extra).
BASIS_FITS = ("landmarks5", "landmarks68")
DEFAULT_BASIS_FIT = "landmarks5"


def check_basis_fit(fit: str) -> None:
    if fit not in BASIS_FITS:
        raise SynfaceError(f"unknown appearance fit {fit!r}; choose one of {', '.join(BASIS_FITS)}")


def default_basis_path(fit: str = DEFAULT_BASIS_FIT) -> Path:
    check_basis_fit(fit)
    name = "celeba-299.npz" if fit == DEFAULT_BASIS_FIT else f"celeba-299-{fit}.npz"
    return cache_root() / "appearance" / name


def basis_fingerprint(path: str | Path | None = None) -> str:
    """A short hash of a basis file's bytes (datasets record which basis rendered them).
    Hashes only: a missing basis is an error naming how to build it, never a build."""
    path = Path(path) if path is not None else default_basis_path()
    if not path.is_file():
        raise DataNotFoundError(f"learned appearance basis not found: {path}; build it with "
                                f"`synface appearance build --real $SYNFACE_DATA/celeba-299 --out {path}` "
                                "(`synface generate`, `demo`, `ab` and `reproduce` build it on their own)")
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]
