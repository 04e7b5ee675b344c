"""Procedural appearance: a linear albedo basis in UV (texture) space.

albedo texture = mean + Σ a_k basis_k, with ``a`` part of the identity vector (so identity
mixup stays one linear formula). The textures live in the render mesh's atlas (face, head and
eye tiles, ``TEXTURE_TILE`` texels square each). Each basis texture is a coloured region mask
evaluated at the 3D point of the neutral face that each texel shows, built from the geometry
and the 68 landmarks: skin tone, lip / cheek / eye-socket tints, three eyebrow shapes, a lash
line, three facial-hair regions, three hair bands (hair.py) with hair colour and strands, iris
colour and two skin-detail fields. The appearance vector also carries coefficients that are
not colours: hair volume (the hair shell's displacement, hair.py) and specular strength.
``facemodel/learned.py`` puts a learned skin texture under the same components.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import ndimage

from synface.facemodel.hair import HAIR_GEOMETRY, check_hairline, falloff, hair_bands, sample_hair
from synface.facemodel.model import ATLAS_TILES, FaceModel, RenderMesh

TEXTURE_TILE = 128  # texels per atlas tile side

SKIN = np.array([0.74, 0.57, 0.47])
MOUTH = np.array([0.30, 0.10, 0.10])
SOCKET = np.array([0.55, 0.33, 0.30])
SCLERA = np.array([0.62, 0.58, 0.56])  # a shaded sclera: bright white eyes read as a stare
IRIS = np.array([0.33, 0.22, 0.15])
PUPIL = np.array([0.03, 0.03, 0.03])
# Painted hair at coefficient 1 has this colour whatever the skin under it: its basis texture
# is mask x (HAIR_BASE - base albedo), so with a learned skin under it the hair still comes
# out hair-coloured (linear in the coefficient; hair_red / hair_light tint it).
HAIR_BASE = SKIN - 0.5
HAIR_BANDS = ("hair_crown", "hair_mid", "hair_fringe")

# name, colour direction (added per unit coefficient inside the mask)
COMPONENTS = [
    ("skin_dark", (-0.26, -0.23, -0.21)),
    ("skin_red", (0.05, -0.02, -0.03)),
    ("skin_yellow", (0.02, 0.02, -0.05)),
    ("lip_tint", (0.10, -0.07, -0.05)),
    ("lip_dark", (-0.10, -0.10, -0.10)),
    ("cheek_blush", (0.07, -0.03, -0.03)),
    ("eye_shadow", (-0.10, -0.11, -0.09)),
    ("brow_arched", (-0.40, -0.40, -0.40)),
    ("brow_thick", (-0.40, -0.40, -0.40)),
    ("brow_straight", (-0.40, -0.40, -0.40)),
    ("moustache", (-0.40, -0.40, -0.40)),
    ("chin_beard", (-0.40, -0.40, -0.40)),
    ("stubble", (-0.30, -0.30, -0.30)),
    ("hair_crown", None),  # toward HAIR_BASE from whatever lies under the hair (see below)
    ("hair_mid", None),
    ("hair_fringe", None),
    ("hair_red", (0.12, 0.02, -0.04)),
    ("hair_light", (0.30, 0.28, 0.20)),
    ("hair_strands", (-0.12, -0.12, -0.12)),
    ("lash_line", (-0.45, -0.45, -0.45)),
    ("iris_blue", (-0.10, 0.06, 0.22)),
    ("iris_light", (0.15, 0.14, 0.10)),
    ("skin_detail_1", (0.02, 0.02, 0.02)),
    ("skin_detail_2", (0.015, 0.012, 0.008)),
]
# Coefficients that are not colours: hair volume (hair.py) and the specular strength
# (``LinearAppearance.specular``). Their texture rows are zero.
NON_TEXTURE = (*HAIR_GEOMETRY, "skin_shine")
NAMES = [name for name, _ in COMPONENTS] + list(NON_TEXTURE)
BASE_SHINE = 0.06  # specular strength at skin_shine = 0


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance in the x-y plane from each point to a polyline."""
    p = points[:, None, :2]
    a, b = line[None, :-1, :2], line[None, 1:, :2]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1).min(1)


@dataclass
class LinearAppearance:
    """An albedo texture linear in the appearance coefficients, plus the non-texture
    coefficients (hair volume, shine) and the prior the coefficients are drawn from."""

    mean: torch.Tensor  # (H*W*3,) float64
    basis: torch.Tensor  # (K, H*W*3) float64
    names: list[str]
    size: tuple[int, int]  # texture (height, width)
    skin_texels: np.ndarray  # flat texel indices of the face's skin (exposure, skin tone)
    prior: Callable[[np.random.Generator], np.ndarray]  # one identity's coefficients (K,)
    # Prior "real_people": the basis's real people's coefficients (N, first columns), which
    # identity i wears as person i mod N (facemodel/learned.py: REAL_PEOPLE_PRIOR).
    people: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return len(self.names)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(self.prior(rng), np.float32)

    def _linear(self, coefficients: torch.Tensor) -> torch.Tensor:
        """mean + a @ basis in float64, so that an image's texture does not depend on the
        batch it is computed in (BLAS sums in batch-dependent order; float64 hides it)."""
        return torch.addmm(self.mean, coefficients.double(), self.basis)

    def albedo(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(B, K) coefficients -> (B, H, W, 3) float32 albedo textures in [0, 1]."""
        return self._linear(coefficients).clamp_(0.0, 1.0).float().view(len(coefficients), *self.size, 3)

    def texture_bytes(self, coefficients: torch.Tensor) -> np.ndarray:
        """uint8 RGB textures (B, H, W, 3), what the renderer uploads: round(255 * albedo),
        with the scale and the rounding offset folded into the basis (two passes over the
        texels instead of five). The product runs as (texels x K) @ (K x B): with a few
        textures per call and a large K (a learned basis keeps every component) that layout
        is about 2.4x faster than (B x K) @ (K x texels)."""
        out = torch.addmm(self._mean_bytes[:, None], self._basis_bytes_t, coefficients.double().t()).t()
        return out.clamp_(0.0, 255.5).to(torch.uint8).reshape(len(coefficients), *self.size, 3).numpy()

    def hair_geometry(self, coefficients: np.ndarray) -> np.ndarray:
        """(B, len(HAIR_GEOMETRY)) hair-volume coefficients of the appearance vectors."""
        return np.asarray(coefficients)[:, self._hair_columns]

    def specular(self, coefficients: np.ndarray) -> np.ndarray:
        """(B,) specular strength (linear in the coefficients, never negative)."""
        return np.clip(BASE_SHINE + 0.04 * np.asarray(coefficients, np.float64)[:, self._shine_column], 0.0, 0.3)

    def skin_tone(self, coefficients: torch.Tensor) -> np.ndarray:
        """(B, 3) mean skin albedo of the face (of the unclamped linear texture: the mean is
        linear, so only the skin texels' mean row of the basis is needed)."""
        c = coefficients.double().numpy()
        return np.stack([self._skin_mean + c[b] @ self._skin_basis for b in range(len(c))]).clip(0.0, 1.0)

    def __post_init__(self) -> None:
        per_texel = lambda t: t.view(*t.shape[:-1], -1, 3)[..., self.skin_texels, :].mean(-2).numpy()  # noqa: E731
        self._skin_mean = per_texel(self.mean)
        self._skin_basis = per_texel(self.basis)
        # Spectacles cover skin without changing its tone, which auto-exposure reads.
        self._skin_basis[[i for i, n in enumerate(self.names) if n == GLASSES]] = 0.0
        self._mean_bytes = self.mean * 255.0 + 0.5
        self._hair_columns = [self.names.index(n) for n in HAIR_GEOMETRY]
        self._shine_column = self.names.index("skin_shine")
        self._basis_bytes_t = (self.basis * 255.0).t().contiguous()  # (texels*3, K)


def texel_surface(mesh: RenderMesh, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each texel of the atlas: the neutral-face 3D point it shows, its region, coverage."""
    from synface.render.gl import rasterize_in_uv

    values = np.concatenate([mesh.neutral.numpy(), mesh.region[:, None].astype(np.float32)], axis=1)
    surface, covered = rasterize_in_uv(mesh.uv, mesh.surface_faces, values, size)
    return surface[..., :3].reshape(-1, 3).astype(np.float64), np.rint(surface[..., 3]).astype(np.int64).reshape(-1), covered


def fill_uncovered(textures: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Give each uncovered texel the value of its nearest covered one, so that bilinear
    sampling at island edges never blends in empty texels (textures (..., H, W, C))."""
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return textures[..., rows, cols, :]


def atlas_size() -> tuple[int, int]:
    """(height, width) of the texture atlas every appearance model paints."""
    return (TEXTURE_TILE, TEXTURE_TILE * len(ATLAS_TILES))


def build_procedural_appearance(model: FaceModel, base: np.ndarray | None = None,
                                hairline: str = "low") -> LinearAppearance:
    """The procedural appearance. ``base`` (H*W, 3): the albedo the painted hair covers
    (default: this model's own mean); a learned skin passes its own mean here. ``hairline``
    (hair.py: HAIRLINE_STYLES): "high" paints hair, its colour and strands on the crown band
    alone."""
    check_hairline(hairline)
    mesh: RenderMesh = model.render_mesh()
    size = atlas_size()
    pos, region, covered = texel_surface(mesh, size)
    lm = mesh.neutral.numpy().astype(np.float64)[mesh.landmarks68]
    names = model.region_names
    is_region = lambda *rs: np.isin(region, [names.index(r) for r in rs])  # noqa: E731
    skin = is_region("face", "head_neck").astype(np.float64)
    front = falloff(-(pos[:, 2] - 6.0), 0.0, 2.0) * skin  # facing forward (z > ~6 cm)
    eyes = is_region("eyeball_L", "eyeball_R")

    mean = np.tile(SKIN, (len(pos), 1))
    mean[is_region("mouth_socket")] = MOUTH
    mean[is_region("eye_socket_L", "eye_socket_R")] = SOCKET
    iris = np.zeros(len(pos))
    for side in ("eyeball_L", "eyeball_R"):
        sel = is_region(side)
        centre = mesh.neutral.numpy()[mesh.region == names.index(side)].mean(0)
        direction = pos[sel] - centre
        cos = direction[:, 2] / np.linalg.norm(direction, axis=1)
        angle = np.arccos(np.clip(cos, -1, 1))
        colour = np.where((angle < 0.50)[:, None], IRIS, SCLERA)
        colour = np.where((angle < 0.20)[:, None], PUPIL, colour)
        mean[sel] = colour
        iris[np.flatnonzero(sel)[(angle >= 0.20) & (angle < 0.50)]] = 1.0
    outer_lip = lm[list(range(48, 60)) + [48]]
    lip_line = np.minimum(_distance_to_polyline(pos, outer_lip), _distance_to_polyline(pos, lm[[60, 61, 62, 63, 64, 65, 66, 67, 60]]))
    lips = falloff(lip_line, 0.2, 0.25) * front * (np.abs(pos[:, 0]) < abs(lm[48, 0]) + 0.2)
    lips *= (pos[:, 1] < lm[51, 1] + 0.2) & (pos[:, 1] > lm[57, 1] - 0.2)
    mean += lips[:, None] * np.array([0.06, -0.08, -0.06])

    cheek_centres = np.stack([(lm[2] + lm[31] + lm[36]) / 3, (lm[14] + lm[35] + lm[45]) / 3])
    cheeks = falloff(np.linalg.norm(pos[:, None] - cheek_centres[None], axis=2).min(1), 0.6, 1.5) * front
    sockets = falloff(np.linalg.norm(pos[:, None] - lm[None, 36:48], axis=2).min(1), 0.4, 0.8) * front

    def brow(dy: float, thickness: float) -> np.ndarray:
        d = np.minimum(
            _distance_to_polyline(pos, lm[17:22] + [0, dy, 0]), _distance_to_polyline(pos, lm[22:27] + [0, dy, 0])
        )
        return falloff(d, thickness, 0.25) * front * (pos[:, 1] > lm[36:48, 1].max() + 0.3)

    mouth_y = lm[[48, 54], 1].mean()
    moustache = (
        falloff(np.abs(pos[:, 0]) - abs(lm[48, 0]) - 0.3, 0, 0.4)
        * (pos[:, 1] < lm[33, 1] - 0.1)
        * (pos[:, 1] > lm[51, 1] + 0.05)
        * front
    )
    chin = falloff(np.abs(pos[:, 0]) - 2.0, 0, 0.8) * (pos[:, 1] < lm[57, 1] - 0.2) * (pos[:, 1] > lm[8, 1] - 1.5)
    stubble = (pos[:, 1] < mouth_y + 0.8) * (pos[:, 1] > lm[8, 1] - 2.0) * (pos[:, 2] > -2.0) * skin * (1 - lips)

    rng = np.random.default_rng(20211011)  # fixed: the detail fields are part of the basis
    detail = []
    for scale in (1.5, 0.6):
        waves = rng.normal(size=(24, 3)) / scale
        phases = rng.uniform(0, 2 * np.pi, 24)
        field = np.sin(pos @ waves.T + phases).sum(1) / np.sqrt(24)
        detail.append(field * skin)

    bands = {k: v * skin for k, v in hair_bands(pos).items()}
    if hairline == "high":
        bands["mid"], bands["fringe"] = np.zeros_like(bands["mid"]), np.zeros_like(bands["fringe"])
    all_hair = bands["crown"] + bands["mid"] + bands["fringe"]
    # Strands: fine irregular streaks running from the crown down (many azimuthal waves of
    # random frequency, each bending a little with height).
    azimuth = np.arctan2(pos[:, 0], pos[:, 2] + 1e-6)
    strand_rng = np.random.default_rng(7)
    streaks = sum(
        np.sin(azimuth * f + pos[:, 1] * b + p)
        for f, b, p in zip(strand_rng.uniform(60, 160, 8), strand_rng.normal(0, 0.4, 8), strand_rng.uniform(0, 6.3, 8))
    ) / np.sqrt(8)
    lids = np.minimum(_distance_to_polyline(pos, lm[[36, 37, 38, 39]]), _distance_to_polyline(pos, lm[[42, 43, 44, 45]]))
    lash_line = falloff(lids, 0.05, 0.12) * front
    masks = {
        "skin_dark": skin,
        "skin_red": skin,
        "skin_yellow": skin,
        "lip_tint": lips,
        "lip_dark": lips,
        "cheek_blush": cheeks,
        "eye_shadow": sockets,
        "brow_arched": brow(0.35, 0.18),
        "brow_thick": brow(0.15, 0.38),
        "brow_straight": brow(0.0, 0.25),
        "moustache": moustache,
        "chin_beard": chin * skin,
        "stubble": stubble,
        "hair_crown": bands["crown"],
        "hair_mid": bands["mid"],
        "hair_fringe": bands["fringe"],
        "hair_red": all_hair,
        "hair_light": all_hair,
        "hair_strands": streaks * all_hair,
        "lash_line": lash_line,
        "iris_blue": iris * eyes,
        "iris_light": iris * eyes,
        "skin_detail_1": detail[0],
        "skin_detail_2": detail[1],
    }
    under = mean if base is None else base
    basis = np.stack([
        masks[name][:, None] * (HAIR_BASE - under if name in HAIR_BANDS else np.array(colour))
        for name, colour in COMPONENTS
    ])
    basis = np.concatenate([basis, np.zeros((len(NON_TEXTURE), *basis.shape[1:]))])
    textures = np.concatenate([mean[None], basis]).reshape(len(NAMES) + 1, *size, 3) * covered[..., None]
    textures = fill_uncovered(textures, covered).reshape(len(NAMES) + 1, -1)
    return LinearAppearance(
        mean=torch.from_numpy(textures[0].astype(np.float64)),
        basis=torch.from_numpy(textures[1:].astype(np.float64)),
        names=list(NAMES),
        size=size,
        skin_texels=np.flatnonzero(covered.reshape(-1) & (region == names.index("face"))),
        prior=sample_appearance,
    )


GLASSES = "glasses"  # the name of the spectacles component (generate/generator.py adds it per image)


def glasses_row(model: FaceModel, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H*W*3,) a texture delta that paints spectacle frames on the skin: an elliptical rim
    around each eye, a bridge over the nose and an arm along each temple toward the ear. At
    coefficient 1 it clamps the frame's texels to black, whoever's skin is under it (a frame
    is not lit skin, so no skin colour should show through). Painted, not modelled: no lens,
    no frame standing off the face, which at 56x48 to 112x96 pixels reads as spectacles."""
    mesh: RenderMesh = model.render_mesh()
    size = size or atlas_size()
    pos, region, covered = texel_surface(mesh, size)
    lm = mesh.neutral.numpy().astype(np.float64)[mesh.landmarks68]
    skin = np.isin(region, [model.region_names.index(r) for r in ("face", "head_neck")])
    frame = np.zeros(len(pos))
    thickness = 0.16  # cm: a medium frame
    for eye, (inner, outer), ear in ((lm[36:42], (39, 36), lm[0]), (lm[42:48], (42, 45), lm[16])):
        centre = eye.mean(0)
        a = 0.85 * np.linalg.norm(lm[outer] - lm[inner])  # lens half-width: eye width x 1.7
        b = 0.72 * a
        near = pos[:, 2] > centre[2] - 1.5  # the front of the face, not the surfaces behind it
        d = np.sqrt(((pos[:, 0] - centre[0]) / a) ** 2 + ((pos[:, 1] - centre[1]) / b) ** 2)
        frame = np.maximum(frame, falloff(np.abs(d - 1.0) * b, thickness, 0.06) * near)
        rim_outer = centre + [np.sign(lm[outer, 0] - centre[0]) * a, 0.0, -0.3]
        temple = np.array([ear[0], centre[1], ear[2]])
        arm = _distance_to_polyline(pos, np.stack([rim_outer, temple]))
        frame = np.maximum(frame, falloff(arm, thickness, 0.06) * (np.abs(pos[:, 0]) >= np.abs(rim_outer[0]) - 0.1))
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    half = 0.85 * np.linalg.norm(lm[39] - lm[36])
    bridge_y = (left[1] + right[1]) / 2 + 0.25
    bridge = np.stack([[left[0] + np.sign(right[0] - left[0]) * half, bridge_y, lm[27, 2]],
                       [right[0] - np.sign(right[0] - left[0]) * half, bridge_y, lm[27, 2]]])
    frame = np.maximum(frame, falloff(_distance_to_polyline(pos, bridge), thickness, 0.06)
                       * (pos[:, 2] > lm[27, 2] - 1.5))
    row = (-2.0 * frame * skin)[:, None] * np.ones(3)
    row = fill_uncovered((row * covered.reshape(-1)[:, None]).reshape(*size, 3), covered)
    return row.reshape(-1)


def with_components(appearance: LinearAppearance, names: list[str], rows: np.ndarray) -> LinearAppearance:
    """``appearance`` with basis rows appended; the identity prior leaves them at 0 (their
    coefficients are set per image)."""
    unset = np.zeros(len(names), np.float32)
    prior = appearance.prior
    return replace(appearance, basis=torch.cat([appearance.basis, torch.from_numpy(np.asarray(rows, np.float64))]),
                   names=list(appearance.names) + list(names),
                   prior=lambda rng: np.concatenate([np.asarray(prior(rng), np.float32), unset]))


def sample_appearance(rng: np.random.Generator) -> np.ndarray:
    """Prior over the procedural coefficients (documented per group)."""
    a = np.zeros(len(NAMES), np.float32)
    idx = {n: i for i, n in enumerate(NAMES)}
    # Skin tone: from very light (-1) to very dark (+1.8), spread over the whole range.
    a[idx["skin_dark"]] = rng.uniform(-1.0, 1.8)
    # Hue shifts stay small: at N(0, 1) dark skin turned green or magenta under auto-exposure,
    # and MTCNN missed those faces (generator_realism: 59 % -> 66 % detected at 0.3x).
    a[idx["skin_red"]] = rng.normal(0, 0.3)
    a[idx["skin_yellow"]] = rng.normal(0, 0.3)
    a[idx["lip_tint"]] = rng.normal(0.3, 0.6)
    a[idx["lip_dark"]] = rng.normal(0, 0.6)
    a[idx["cheek_blush"]] = rng.normal(0, 0.7)
    a[idx["eye_shadow"]] = rng.normal(0.3, 0.6)
    # One dominant eyebrow shape, the others faint.
    brows = rng.uniform(0.0, 0.3, 3)
    brows[rng.integers(3)] = rng.uniform(0.5, 1.1)
    a[[idx["brow_arched"], idx["brow_thick"], idx["brow_straight"]]] = brows
    # Facial hair for about a third of identities.
    if rng.random() < 0.35:
        a[[idx["moustache"], idx["chin_beard"], idx["stubble"]]] = rng.uniform(0, 1, 3) * rng.random(3).round()
    # Hair: crown almost always, mid hairline usually, fringe sometimes (bald when all small).
    # The band coefficients are coverage: near 1 hair hides the skin (at 0.6 a light forehead
    # showed through as a pale headband); thin hair is the exception. Colour is hair_red/light.
    a[idx["hair_crown"]] = (rng.uniform(0.85, 1.1) if rng.random() > 0.15 else rng.uniform(0.3, 0.85)) if rng.random() > 0.08 else 0.0
    a[idx["hair_mid"]] = a[idx["hair_crown"]] * (rng.random() < 0.75)
    a[idx["hair_fringe"]] = a[idx["hair_crown"]] * (rng.random() < 0.3)
    a[idx["hair_red"]] = rng.normal(0, 0.7)
    a[idx["hair_light"]] = max(0.0, rng.normal(0, 0.6))
    a[idx["hair_strands"]] = rng.uniform(0.3, 1.0)
    a[idx["lash_line"]] = rng.uniform(0.3, 1.0)
    # Hair volume follows the painted hair (hair.py: sample_hair); drawn last so the other
    # coefficients keep the values they had before hair had volume.
    hair = sample_hair(rng, float(a[idx["hair_crown"]]), a[idx["hair_mid"]] > 0, a[idx["hair_fringe"]] > 0)
    for name, value in hair.items():
        a[idx[name]] = value
    a[idx["skin_shine"]] = rng.normal(0, 1)
    a[idx["iris_blue"]] = max(0.0, rng.normal(0, 0.8))
    a[idx["iris_light"]] = rng.normal(0, 0.7)
    a[idx["skin_detail_1"]] = rng.normal(0, 1)
    a[idx["skin_detail_2"]] = rng.normal(0, 1)
    return a
