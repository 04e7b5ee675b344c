"""The ICT-FaceKit morphable model: loading, validation and a trimmed mesh for rendering.

verts = neutral + Σ shape_i · id_basis_i + Σ expr_j · exp_basis_j   (centimetres, +y up,
the face looks toward +z, +x is the subject's left).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synface.errors import DataNotFoundError, SynfaceError
from synface.facemodel.hair import HAIR_GEOMETRY, SHELL_INSET, hair_geometry_masks, shell_vertices
from synface.paths import data_path

REQUIRED = {
    "neutral": 2,
    "id_basis": 3,
    "exp_basis": 3,
    "exp_names": 1,
    "exp_in_config": 1,
    "faces": 2,
    "face_region": 1,
    "face_material": 1,
    "region_names": 1,
    "material_names": 1,
    "vertex_region": 1,
    "landmarks68": 1,
    "uv": 2,
    "faces_uv": 2,
}
# Opaque parts a face crop shows. Helper overlays (lacrimal fluid, eye blend/occlusion,
# lash cards), teeth and gums are left out: at 112x96 they cost triangles and show nothing.
RENDER_REGIONS = ("face", "head_neck", "mouth_socket", "eye_socket_L", "eye_socket_R", "eyeball_L", "eyeball_R")
# The iris discs sit under the sclera sphere; the iris is painted onto the sclera instead.
SKIPPED_MATERIALS = ("M_IrisLeft", "M_IrisRight")
# 5 alignment points from the 68: eye centres, nose tip, mouth corners (image left first).
FIVE_POINT_GROUPS = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))
# The drawn mesh is simplified (from ~31K triangles): the skin to SKIN_TRIANGLES, what the
# skin mostly hides (mouth interior, eye sockets, eyeballs) to INTERIOR_TRIANGLES, and the hair
# shell (hair.py; smooth, only its silhouette shows detail) to SHELL_TRIANGLES. llvmpipe's cost
# is mostly per triangle. Against the full mesh (38K triangles with the shell), 128 renders at
# 112x96 differ by a mean of 2.8 grey levels with these counts and by 2.4 with the previous
# ones (9,000 skin and interior together, 1,200 shell), and rasterise in 18 % less time.
SKIN_TRIANGLES = 5000
INTERIOR_TRIANGLES = 600
SHELL_TRIANGLES = 800
# Texture atlas: three square tiles side by side. The ICT UV layout puts the face and the
# eyeballs in the same UDIM tile (separate textures in the original), so they get a tile each.
ATLAS_TILES = ("face", "head", "eyes")
_ATLAS_TILE_OF_REGION = {"face": 0, "head_neck": 1, "mouth_socket": 1, "eye_socket_L": 1, "eye_socket_R": 1,
                         "eyeball_L": 2, "eyeball_R": 2}


def area_weighted_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals (V, 3) of one mesh, each the area-weighted mean of its triangles'."""
    v = vertices.astype(np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def default_model_path() -> Path:
    return data_path("facemodels", "ict-facekit.npz")


@dataclass
class RenderMesh:
    """The trimmed mesh, its bases restricted to the vertices it uses (torch, float32)."""

    neutral: torch.Tensor  # (V, 3)
    id_basis: torch.Tensor  # (S, V*3)
    exp_basis: torch.Tensor  # (E, V*3)
    faces: torch.Tensor  # (F, 3) int64 into the V vertices
    region: np.ndarray  # (V,) region id per vertex (names in FaceModel.region_names)
    five_point_groups: list[list[int]]  # per alignment point, the vertices it averages
    landmarks68: np.ndarray  # (68,) indices into the V vertices
    uv: np.ndarray  # (V, 2) float32 texture-atlas coordinates in [0, 1] (v up)
    source: np.ndarray  # (V,) the model vertex each render vertex copies (split at UV seams)
    hair_basis: torch.Tensor  # (H, V*3) displacement of the hair shell per HAIR_GEOMETRY coefficient
    is_shell: np.ndarray  # (V,) bool: vertex of the hair shell (a copy of a scalp vertex)

    @property
    def num_vertices(self) -> int:
        return self.neutral.shape[0]

    @property
    def surface_faces(self) -> np.ndarray:
        """The triangles of the head's surface, without the hair shell (which shares its UVs)."""
        faces = self.faces.numpy()
        return faces[~self.is_shell[faces[:, 0]]]


class FaceModel:
    """The morphable model loaded from its npz, with clear errors for a bad file."""

    def __init__(self, arrays: dict[str, np.ndarray], source: Path) -> None:
        self.source = source
        self.neutral = arrays["neutral"].astype(np.float32)
        self.id_basis = arrays["id_basis"].astype(np.float32)
        self.exp_basis = arrays["exp_basis"].astype(np.float32)
        self.exp_names = [str(n) for n in arrays["exp_names"]]
        self.exp_in_config = arrays["exp_in_config"].astype(bool)
        self.faces = arrays["faces"].astype(np.int64)
        self.face_region = arrays["face_region"].astype(np.int64)
        self.face_material = arrays["face_material"].astype(np.int64)
        self.region_names = [str(n) for n in arrays["region_names"]]
        self.material_names = [str(n) for n in arrays["material_names"]]
        self.vertex_region = arrays["vertex_region"].astype(np.int64)
        self.landmarks68 = arrays["landmarks68"].astype(np.int64)
        self.uv = arrays["uv"].astype(np.float32)
        self.faces_uv = arrays["faces_uv"].astype(np.int64)
        self._check(source)
        self._mesh: RenderMesh | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> FaceModel:
        path = Path(path) if path is not None else default_model_path()
        if not path.is_file():
            raise DataNotFoundError(f"face model not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = sorted(set(REQUIRED) - set(npz.files))
                if missing:
                    raise SynfaceError(f"face model {path} lacks arrays: {', '.join(missing)}")
                arrays = {key: npz[key] for key in REQUIRED}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise SynfaceError(f"face model {path} is not a readable npz file: {exc}") from exc
        return cls(arrays, path)

    def _check(self, path: Path) -> None:
        v = self.neutral.shape[0]
        problems = []
        if self.neutral.shape != (v, 3):
            problems.append(f"neutral has shape {self.neutral.shape}, expected (V, 3)")
        if self.id_basis.ndim != 3 or self.id_basis.shape[1:] != (v, 3):
            problems.append(f"id_basis has shape {self.id_basis.shape}, expected (S, {v}, 3)")
        if self.exp_basis.ndim != 3 or self.exp_basis.shape[1:] != (v, 3):
            problems.append(f"exp_basis has shape {self.exp_basis.shape}, expected (E, {v}, 3)")
        if len(self.exp_names) != len(self.exp_basis):
            problems.append("exp_names and exp_basis differ in length")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.min() < 0 or self.faces.max() >= v:
            problems.append("faces must be (F, 3) vertex indices")
        if len(self.face_region) != len(self.faces) or len(self.face_material) != len(self.faces):
            problems.append("face_region / face_material must have one entry per triangle")
        if self.faces_uv.shape != self.faces.shape or self.faces_uv.max() >= len(self.uv):
            problems.append("faces_uv must be (F, 3) indices into uv")
        if self.landmarks68.shape != (68,) or self.landmarks68.max() >= v:
            problems.append("landmarks68 must be 68 vertex indices")
        if problems:
            raise SynfaceError(f"face model {path} is malformed: " + "; ".join(problems))

    @property
    def num_shape(self) -> int:
        return self.id_basis.shape[0]

    @property
    def num_expressions(self) -> int:
        return self.exp_basis.shape[0]

    def vertices(self, shape: np.ndarray, expression: np.ndarray | None = None) -> np.ndarray:
        """Full-resolution vertices (V, 3) for one identity shape and expression."""
        out = self.neutral + np.tensordot(np.asarray(shape, np.float32), self.id_basis, 1)
        if expression is not None:
            out = out + np.tensordot(np.asarray(expression, np.float32), self.exp_basis, 1)
        return out

    def render_mesh(self) -> RenderMesh:
        """The trimmed mesh the renderer draws (built once)."""
        if self._mesh is None:
            self._mesh = self._build_render_mesh()
        return self._mesh

    def _build_render_mesh(self) -> RenderMesh:
        """Keep the visible regions, split vertices at UV seams (one render vertex per
        (vertex, uv) pair), simplify, add the hair shell, and restrict the bases to the
        vertices left and the 68 landmarks (kept for alignment even where not drawn)."""
        regions = [self.region_names.index(r) for r in RENDER_REGIONS]
        skipped = [self.material_names.index(m) for m in SKIPPED_MATERIALS if m in self.material_names]
        keep = np.isin(self.face_region, regions) & ~np.isin(self.face_material, skipped)
        corners = np.stack([self.faces[keep].ravel(), self.faces_uv[keep].ravel()], axis=1)
        split, corner_index = np.unique(corners, axis=0, return_inverse=True)
        source = split[:, 0]
        faces = corner_index.reshape(-1, 3)
        # A split vertex belongs to the region of the triangles around it (one UV island =
        # one region), not to the model's vertex range: seam vertices of the face range that
        # the scalp's triangles use are scalp here.
        region = np.empty(len(split), np.int64)
        region[faces.ravel()] = np.repeat(self.face_region[keep], 3)
        uv = self._atlas_uv(split[:, 1], region)
        landmarks = self._first_copy(source, self.landmarks68)

        # Simplify on the neutral shape. Open borders (eye and mouth openings, the neck) and
        # UV seams stay locked, so lid and lip margins keep every vertex they move with.
        is_skin = np.isin(region, [self.region_names.index(r) for r in ("face", "head_neck")])
        # The skin and what it mostly hides (mouth interior, sockets, eyeballs) are simplified
        # apart: the hidden parts get fewer triangles. The skin is drawn first so that the
        # rasteriser's early depth test skips shading most hidden fragments.
        skin_faces = is_skin[faces[:, 0]]
        positions = self.neutral[source]
        faces = np.concatenate([
            self._simplify(faces[skin_faces], positions, SKIN_TRIANGLES),
            self._simplify(faces[~skin_faces], positions, INTERIOR_TRIANGLES),
        ])

        used = np.unique(np.concatenate([faces.ravel(), landmarks]))
        remap = np.full(len(source), -1, np.int64)
        remap[used] = np.arange(len(used))
        source, region, uv, is_skin, faces = source[used], region[used], uv[used], is_skin[used], remap[faces]
        lm = remap[landmarks]
        neutral = self.neutral[source]
        hair_basis = np.zeros((len(HAIR_GEOMETRY), len(source), 3), np.float32)

        # The hair shell: the scalp's triangles again, resting SHELL_INSET inside the skin and
        # pushed out by the hair coefficients. Normals come from the unsplit model mesh, so
        # copies of one vertex on either side of a UV seam move together (no cracks).
        shell = shell_vertices(neutral, is_skin)
        shell_faces = self._simplify(faces[shell[faces].all(axis=1)], neutral, SHELL_TRIANGLES)
        copies = np.unique(shell_faces)
        shell_index = np.full(len(source), -1, np.int64)
        shell_index[copies] = len(source) + np.arange(len(copies))
        normals = area_weighted_normals(self.neutral, self.faces)[source[copies]]
        masks = hair_geometry_masks(neutral[copies])
        shell_basis = np.stack([masks[k][:, None] * normals for k in HAIR_GEOMETRY]).astype(np.float32)
        n_skin = int(is_skin[faces[:, 0]].sum())  # faces are sorted skin first
        groups = (faces[:n_skin], shell_index[shell_faces], faces[n_skin:])
        vertex_count = len(source) + len(copies)
        faces = np.concatenate([self._cache_order(group, vertex_count) for group in groups])
        source = np.concatenate([source, source[copies]])
        neutral = np.concatenate([neutral, neutral[copies] - SHELL_INSET * normals])
        hair_basis = np.concatenate([hair_basis, shell_basis], axis=1)
        is_shell = np.concatenate([np.zeros(len(region), bool), np.ones(len(copies), bool)])
        region = np.concatenate([region, region[copies]])
        uv = np.concatenate([uv, uv[copies]])
        return RenderMesh(
            neutral=torch.from_numpy(neutral.astype(np.float32)),
            id_basis=torch.from_numpy(self.id_basis[:, source].reshape(self.num_shape, -1).copy()),
            exp_basis=torch.from_numpy(self.exp_basis[:, source].reshape(self.num_expressions, -1).copy()),
            faces=torch.from_numpy(faces),
            region=region,
            five_point_groups=[[int(lm[k]) for k in group] for group in FIVE_POINT_GROUPS],
            landmarks68=lm,
            uv=uv,
            source=source,
            hair_basis=torch.from_numpy(hair_basis.reshape(len(HAIR_GEOMETRY), -1)),
            is_shell=is_shell,
        )

    @staticmethod
    def _simplify(faces: np.ndarray, positions: np.ndarray, triangles: int) -> np.ndarray:
        """At most ``triangles`` of ``faces`` (meshoptimizer; open borders locked)."""
        import meshoptimizer

        indices = faces.astype(np.uint32).ravel()
        out = np.zeros_like(indices)
        count = meshoptimizer.simplify(
            out, indices, np.ascontiguousarray(positions, dtype=np.float32),
            target_index_count=min(triangles * 3, len(indices)), target_error=0.02,
            options=meshoptimizer.SIMPLIFY_LOCK_BORDER,
        )
        return out[:count].astype(np.int64).reshape(-1, 3)

    @staticmethod
    def _cache_order(faces: np.ndarray, vertex_count: int) -> np.ndarray:
        """The same triangles, reordered so that each vertex is used in a short run
        (meshoptimizer's vertex-cache order): llvmpipe then shades and fetches most vertices
        once per draw instead of up to six times (about 10 % of the raster time)."""
        import meshoptimizer

        indices = faces.astype(np.uint32).ravel()
        out = np.zeros_like(indices)
        meshoptimizer.optimize_vertex_cache(out, indices, len(indices), vertex_count)
        return out.astype(np.int64).reshape(-1, 3)

    def _atlas_uv(self, uv_index: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Atlas coordinates of split vertices: the UDIM fraction placed in its region's tile."""
        tile_of = np.zeros(len(self.region_names), np.int64)
        for r, t in _ATLAS_TILE_OF_REGION.items():
            tile_of[self.region_names.index(r)] = t
        tile = tile_of[region]
        frac = self.uv[uv_index] - np.floor(self.uv[uv_index])
        return np.stack([(tile + frac[:, 0]) / len(ATLAS_TILES), frac[:, 1]], axis=1).astype(np.float32)

    @staticmethod
    def _first_copy(source: np.ndarray, vertices: np.ndarray) -> np.ndarray:
        """Index of the first split copy of each model vertex in ``vertices``."""
        order = np.argsort(source, kind="stable")
        return order[np.searchsorted(source[order], vertices)]
