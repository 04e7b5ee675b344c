"""A learned appearance basis: skin albedo textures unwrapped from real photos, and their PCA.

``synface appearance build --real DIR --out FILE.npz`` turns a folder of real face images with
5-point landmarks (``celeba-299``) into a linear texture basis in our UV atlas:

1. **fit** the mean face to each image's 5 landmarks (weak perspective: yaw, pitch, roll,
   scale, shift; identity and expression cannot be recovered from 5 points, so the mean
   shape is used); images whose landmarks the fit cannot explain are skipped and counted.
   With ``fit="landmarks68"`` each person's own shape is fitted instead, to dlib's 68
   points on all their photos (with a pose and a few expressions per photo), so eyes, brows
   and lips land on the same texels in every photo (``facemodel/fitting.py``:
   ``fit_person_shape``);
2. **unwrap**: rasterise the posed mesh over the image with texture coordinates as vertex
   values, so each visible pixel names the texel it shows; pixels on surfaces turned away
   from the camera (or on the silhouette) are dropped;
3. **unshade**: fit spherical-harmonics lighting to the skin pixels and divide each pixel by
   its shading *relative to a face-on surface* (the light's spatial pattern goes, the
   photo's overall level and colour stay: dividing by absolute shading would make every
   skin tone the assumed one);
4. **average** each person's unwrapped textures (weighted by how squarely each texel was
   seen), fill unseen texels from their mirror texel, then from the mean of everyone;
5. **PCA** over identities (scaled so coefficients are N(0, 1)), and separately over the
   within-person residuals of single photos. By default every component is kept (N - 1 for
   N identities): the small ones carry the local detail (brows, lids, lips) that tells people
   apart. Against the first 40 (77 % of the variance), keeping all 222 of celeba-299 raised
   dlib's inter-identity distance of generated people from 0.656 to 0.678, cut its false
   accepts at 0.6 from 26.7 % to 16.5 % (identity_separability, 200 identities x 8) and
   raised LFW accuracy at equal budget from 76.6 % to 77.6 % (reports/identity_richness.md).

Only skin texels (face, scalp/neck/ears) are learned; eyes, mouth interior and sockets keep
the procedural texture, whose iris and pupil the photos' gaze would blur away.
"""


from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from synface.errors import DataNotFoundError, SynfaceError
from synface.facemodel.appearance import atlas_size, build_procedural_appearance, texel_surface
from synface.facemodel.basis import FORMAT_VERSION, check_basis_fit, mesh_signature
from synface.facemodel.fitting import (FIT_EXPRESSIONS, fit_person_shape, fit_pose, fit_sh_lighting, project_weak,
                                       rotation_matrix)
from synface.facemodel.latents import canonical_illumination, sh_basis
from synface.facemodel.model import FaceModel, RenderMesh, area_weighted_normals
from synface.faces.dense_landmarks import Landmarks68
from synface.faces.landmarks import find_landmark_file, read_landmarks
from synface.imageio import LUMA_WEIGHTS, read_rgb
from synface.render.gl import ValueRasterizer, rasterize_in_uv

LEARNED_REGIONS = ("face", "head_neck")
MAX_POSE_RMS = 0.12  # landmark misfit (fraction of the eye distance) beyond which a fit is bad
MIN_FACING = 0.3  # cos of the angle between surface and view: more oblique pixels are dropped
SEEN = 0.5  # summed facing weight above which a texel counts as seen in an identity's photos
ASSUMED_SKIN = np.array([0.74, 0.57, 0.47])  # albedo assumed when fitting light to skin pixels


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array(LUMA_WEIGHTS)


@dataclass
class TexelMap:
    """What the learned texels are: flat atlas indices, their model-space normals, and the
    index of each one's mirror image (the texel showing the point at -x)."""

    size: tuple[int, int]
    texels: np.ndarray  # (T,) flat indices into the atlas (row-major, row 0 at v = 0)
    normals: np.ndarray  # (T, 3)
    mirror: np.ndarray  # (T,) positions into ``texels``
    skin: np.ndarray  # (T,) bool: face-region texels used to fit the light

    @classmethod
    def build(cls, mesh: RenderMesh, size: tuple[int, int], region_names: list[str]) -> TexelMap:
        surface, region, covered = texel_surface(mesh, size)
        normals = area_weighted_normals(mesh.neutral.numpy(), mesh.surface_faces)
        texel_normals, _ = rasterize_in_uv(mesh.uv, mesh.surface_faces, normals, size)
        learned = covered.reshape(-1) & np.isin(region, [region_names.index(r) for r in LEARNED_REGIONS])
        texels = np.flatnonzero(learned)
        pos = surface[texels]
        n = texel_normals.reshape(-1, 3)[texels]
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)
        # Mirror across x = 0, to the nearest texel on the same side of the face/scalp seam.
        mirror = np.empty(len(texels), np.int64)
        for r in np.unique(region[texels]):
            sel = np.flatnonzero(region[texels] == r)
            _, nearest = cKDTree(pos[sel]).query(pos[sel] * np.array([-1.0, 1.0, 1.0]))
            mirror[sel] = sel[nearest]
        skin = region[texels] == region_names.index("face")
        return cls(tuple(size), texels, n.astype(np.float32), mirror, skin)


class Unwrapper:
    """Unwraps images of the posed mesh into (albedo sum, weight) over the learned texels."""

    def __init__(self, mesh: RenderMesh, texel_map: TexelMap, canvas: tuple[int, int]) -> None:
        self.mesh, self.map = mesh, texel_map
        self.canvas = canvas
        self.raster = ValueRasterizer(canvas)
        self.faces = mesh.surface_faces
        # texel (flat atlas index) -> position in texel_map.texels, -1 when not learned
        h, w = texel_map.size
        self.position = np.full(h * w, -1, np.int64)
        self.position[texel_map.texels] = np.arange(len(texel_map.texels))
        canonical = canonical_illumination().astype(np.float64)
        self.canonical_face_on = float(luminance(sh_basis(np.array([0.0, 0.0, 1.0])) @ canonical))

    def close(self) -> None:
        self.raster.close()

    def unwrap(
        self, image: np.ndarray, pixels: np.ndarray, depth: np.ndarray, rotation: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """image (h, w, 3) float in [0, 1]; pixels (V, 2) vertex positions in its pixels (centre
        of pixel (0, 0) at (0, 0), y down); depth (V,) larger = farther; rotation (3, 3) model
        to camera. Returns (sum of weight x albedo (T, 3), summed weight (T,))."""
        where, colours, normals, facing = self.visible_texels(image, pixels, depth, rotation)
        albedo = colours / self.relative_shading(colours, normals, self.map.skin[where])[:, None]
        sums = np.zeros((len(self.map.texels), 3))
        weights = np.zeros(len(self.map.texels))
        np.add.at(sums, where, albedo * facing[:, None])
        np.add.at(weights, where, facing)
        return sums, weights

    def fit_light(self, image: np.ndarray, pixels: np.ndarray, depth: np.ndarray, rotation: np.ndarray) -> np.ndarray | None:
        """The SH light (9, 3) of the photo, fitted to its visible skin as ``unwrap`` unshades
        it; None when too little skin shows."""
        where, colours, normals, _ = self.visible_texels(image, pixels, depth, rotation)
        return skin_light(colours, normals, self.map.skin[where])

    def visible_texels(self, image: np.ndarray, pixels: np.ndarray, depth: np.ndarray, rotation: np.ndarray):
        """(texel positions, colours (N, 3), camera-space normals (N, 3), facing (N,)) of the
        learned texels the photo shows squarely enough (arguments as ``unwrap``)."""
        h, w = image.shape[:2]
        ch, cw = self.canvas
        if h > ch or w > cw:
            raise SynfaceError(f"image of {w}x{h} px is larger than the unwrap canvas {cw}x{ch}")
        ndc = np.stack([
            (pixels[:, 0] + 0.5) * (2.0 / cw) - 1.0,
            1.0 - (pixels[:, 1] + 0.5) * (2.0 / ch),
            np.clip((depth - depth.mean()) / 40.0, -0.99, 0.99),
        ], axis=1)
        values, covered = self.raster.draw(ndc, self.faces, self.mesh.uv)
        values, covered = values[::-1][:h, :w], covered[::-1][:h, :w]  # GL rows run bottom-up
        # Silhouette pixels mix in background: keep pixels whose neighbours are all covered.
        covered = ndimage.binary_erosion(covered, iterations=1)
        th, tw = self.map.size
        tx = np.clip((values[..., 0] * tw).astype(np.int64), 0, tw - 1)
        ty = np.clip((values[..., 1] * th).astype(np.int64), 0, th - 1)
        where = self.position[ty * tw + tx]
        ok = covered & (where >= 0)
        where = where[ok]
        colours = image[ok].astype(np.float64)
        normals = self.map.normals[where] @ rotation.T  # camera space, +z toward the camera
        facing = normals[:, 2]
        keep = facing > MIN_FACING
        return where[keep], colours[keep], normals[keep], facing[keep]

    def relative_shading(self, colours: np.ndarray, normals: np.ndarray, skin: np.ndarray) -> np.ndarray:
        """Per pixel, the fitted light's luminance on its surface relative to a face-on surface,
        times the canonical face-on irradiance (so canonical light reproduces the photo)."""
        light = skin_light(colours, normals, skin)
        if light is None:
            return np.full(len(colours), self.canonical_face_on)
        shading = luminance(sh_basis(normals) @ light)
        face_on = luminance(sh_basis(np.array([0.0, 0.0, 1.0])) @ light)
        return np.clip(shading / max(face_on, 1e-3), 0.35, 2.5) * self.canonical_face_on


def skin_light(colours: np.ndarray, normals: np.ndarray, skin: np.ndarray) -> np.ndarray | None:
    """SH light (9, 3, float64) fitted to the skin pixels among ``colours`` / ``normals``
    (albedo ASSUMED_SKIN, pulled toward the canonical light); None below 30 skin pixels."""
    if skin.sum() < 30:
        return None
    prior = canonical_illumination().astype(np.float64)
    return fit_sh_lighting(colours[skin], normals[skin], ASSUMED_SKIN, prior).astype(np.float64)


# ---- fitting photos ---------------------------------------------------------------------------
def project_mean_face(mesh: RenderMesh, landmarks: np.ndarray):
    """Weak-perspective fit of the mean face to 5 landmarks: (PoseFit, pixels (V, 2), depth (V,),
    rotation (3, 3)). The fit is the raw one (no annotation offset): it must overlay the photo."""
    verts = mesh.neutral.numpy().astype(np.float64)
    five = np.stack([verts[list(g)].mean(0) for g in mesh.five_point_groups])
    fit = fit_pose(landmarks, five)
    rotation = rotation_matrix(*fit.pose.astype(np.float64))
    cam = (verts - five.mean(0)) @ rotation.T
    pixels = np.stack([fit.scale * cam[:, 0] + fit.shift[0], -fit.scale * cam[:, 1] + fit.shift[1]], axis=1)
    return fit, pixels, -cam[:, 2], rotation


@dataclass
class FittingBases:
    """The render mesh's neutral vertices and its shape and FIT_EXPRESSIONS bases in float64,
    made once per build: every person's fit and projection reads them."""

    neutral: np.ndarray  # (V, 3)
    shape: np.ndarray  # (S, V, 3)
    expression: np.ndarray  # (E, V, 3)
    landmarks68: np.ndarray  # (68,) vertex indices

    @classmethod
    def of(cls, mesh: RenderMesh, model: FaceModel) -> FittingBases:
        count = mesh.num_vertices
        expression = mesh.exp_basis.numpy().astype(np.float64).reshape(-1, count, 3)
        return cls(mesh.neutral.numpy().astype(np.float64),
                   mesh.id_basis.numpy().astype(np.float64).reshape(-1, count, 3),
                   expression[[model.exp_names.index(name) for name in FIT_EXPRESSIONS]], mesh.landmarks68)


def project_fitted_person(bases: FittingBases, landmarks68: list[np.ndarray]):
    """The person's own shape fitted to the 68 landmarks of all their photos (with each photo's
    pose and expression), projected into each photo: ([(misfit relative to the eye distance,
    pixels, depth, rotation)] per photo, as ``project_mean_face``'s; shape coefficients (S,))."""
    if not landmarks68:
        return [], None
    lm = bases.landmarks68
    fit = fit_person_shape(landmarks68, bases.neutral[lm], bases.shape[:, lm], bases.expression[:, lm])
    person = bases.neutral + np.tensordot(fit.shape, bases.shape, 1)
    out = []
    for j in range(len(landmarks68)):
        verts = person + np.tensordot(fit.expressions[j], bases.expression, 1)
        rotation = rotation_matrix(*fit.params[j, :3])
        out.append((float(fit.rms_error[j]), project_weak(verts, fit.params[j]), -(verts @ rotation.T)[:, 2], rotation))
    return out, fit.shape


def identity_texture(sums: np.ndarray, weights: np.ndarray, texel_map: TexelMap, fallback: np.ndarray) -> np.ndarray:
    """One person's texture (T, 3) from summed unwraps: smoothed over neighbouring texels
    (normalised convolution, so holes between scattered pixels close), unseen texels taken
    from their mirror texel, then from ``fallback``."""
    h, w = texel_map.size
    grid_s = np.zeros((h * w, 3))
    grid_w = np.zeros(h * w)
    grid_s[texel_map.texels] = sums
    grid_w[texel_map.texels] = weights
    grid_s = ndimage.gaussian_filter(grid_s.reshape(h, w, 3), sigma=(0.8, 0.8, 0))
    grid_w = ndimage.gaussian_filter(grid_w.reshape(h, w), sigma=0.8)
    s = grid_s.reshape(-1, 3)[texel_map.texels]
    wt = grid_w.reshape(-1)[texel_map.texels]
    seen = wt > SEEN * 0.3  # smoothing spreads a texel's weight over ~3 neighbours
    texture = np.where(seen[:, None], s / np.maximum(wt, 1e-9)[:, None], np.nan)
    mirrored = ~seen & seen[texel_map.mirror]
    texture[mirrored] = texture[texel_map.mirror[mirrored]]
    missing = np.isnan(texture[:, 0])
    texture[missing] = fallback[missing]
    return texture


# ---- PCA ----------------------------------------------------------------------------------------
def pca(data: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (D,), basis (k, D) orthonormal rows, variance (k,)) of rows ``data`` (N, D)."""
    mean = data.mean(0)
    _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
    # Centred, N rows span at most N - 1 directions; a null direction has no variance to
    # scale coefficients by.
    k = min(components, int((singular > 1e-9 * singular[0]).sum()))
    return mean, vt[:k], singular[:k] ** 2 / max(len(data) - 1, 1)


def reconstruction_error(data: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> float:
    """RMS error of projecting ``data`` (N, D) onto ``mean`` + span(``basis``)."""
    centred = data - mean
    residual = centred - (centred @ basis.T) @ basis
    return float(np.sqrt((residual**2).mean()))


# ---- the build ----------------------------------------------------------------------------------
@dataclass
class BuildReport:
    images: int
    used: int
    skipped: list[tuple[str, str]]  # (image, why)
    bad_fits: int
    identities: int
    components: int
    explained: float  # share of the identity variance the kept components explain


def list_real_images(real: Path) -> tuple[dict[str, np.ndarray], Path]:
    if not real.is_dir():
        raise DataNotFoundError(f"real image folder not found: {real}")
    landmark_file = find_landmark_file(real)
    if landmark_file is None:
        raise DataNotFoundError(f"no landmark file (landmarks.txt) in {real}")
    return read_landmarks(landmark_file), landmark_file


def build_learned_appearance(
    real: str | Path,
    out: str | Path,
    model: FaceModel | None = None,
    components: int | None = None,
    residual_components: int = 20,
    max_identities: int | None = None,
    progress: bool = True,
    fit: str = "landmarks5",
) -> BuildReport:
    """Build the learned basis from ``real`` (identity folders + landmarks.txt) into ``out``;
    ``components``: identity components kept (None: all, one fewer than the identities);
    ``fit``: what each photo is unwrapped onto (BASIS_FITS)."""
    check_basis_fit(fit)
    real, out = Path(real), Path(out)
    table, landmark_file = list_real_images(real)
    by_identity: dict[str, list[str]] = {}
    for rel in sorted(table):
        by_identity.setdefault(rel.split("/")[0], []).append(rel)
    people = sorted(by_identity)[:max_identities] if max_identities else sorted(by_identity)
    model = model or FaceModel.load()
    mesh = model.render_mesh()
    size = atlas_size()
    texel_map = TexelMap.build(mesh, size, model.region_names)
    procedural_mean = build_procedural_appearance(model).mean.numpy().reshape(-1, 3)[texel_map.texels]
    unwrapper = Unwrapper(mesh, texel_map, canvas=(256, 256))

    per_identity, per_image, skipped, shapes = [], [], [], []
    bad_fits = used = 0
    images = [rel for person in people for rel in by_identity[person]]
    dense = Landmarks68() if fit == "landmarks68" else None
    fitting_bases = FittingBases.of(mesh, model) if dense is not None else None
    bar = tqdm(total=len(images), desc="unwrap real faces", unit="img", disable=not progress)
    try:
        for person in people:
            photos = []
            for rel in by_identity[person]:
                bar.update(1)
                try:
                    photos.append((rel, read_rgb(real / rel)))
                except (SynfaceError, OSError) as exc:
                    skipped.append((rel, str(exc)))
                    tqdm.write(f"skipped {rel}: {exc}")
            if dense is None:
                fits = (project_mean_face(mesh, table[rel]) for rel, _ in photos)
                projections = [(fit.rms_error, *projection) for fit, *projection in fits]
                shape = None
            else:
                projections, shape = project_fitted_person(fitting_bases, [dense(img, table[rel]) for rel, img in photos])
            sums = np.zeros((len(texel_map.texels), 3))
            weights = np.zeros(len(texel_map.texels))
            singles = []
            for (rel, img), (rms, pixels, depth, rotation) in zip(photos, projections):
                if rms > MAX_POSE_RMS:
                    bad_fits += 1
                    continue
                s, w = unwrapper.unwrap(img.astype(np.float64) / 255.0, pixels, depth, rotation)
                sums += s
                weights += w
                singles.append((s, w))
                used += 1
            if weights.sum() == 0:
                continue
            per_identity.append((person, sums, weights))
            per_image.extend((person, s, w) for s, w in singles)
            shapes.append(shape)
    finally:
        bar.close()
        unwrapper.close()
    if len(per_identity) < 3:
        raise SynfaceError(f"{real}: only {len(per_identity)} identities could be unwrapped; need at least 3")

    # Mean of everyone first (the fallback for texels a person never showed), then each person.
    total_s = sum(s for _, s, _ in per_identity)
    total_w = sum(w for _, _, w in per_identity)
    overall = np.where((total_w > SEEN)[:, None], total_s / np.maximum(total_w, 1e-9)[:, None], procedural_mean)
    textures = np.stack([identity_texture(s, w, texel_map, overall) for _, s, w in per_identity])
    flat = textures.reshape(len(textures), -1)
    mean, basis, variance = pca(flat, components or len(flat))
    total_variance = float(((flat - mean) ** 2).sum() / max(len(flat) - 1, 1))
    coefficients = (flat - mean) @ basis.T / np.sqrt(variance)

    # Within-person residuals of single photos, where each photo saw the texel.
    index = {person: k for k, (person, _, _) in enumerate(per_identity)}
    rng = np.random.default_rng(0)
    chosen = rng.permutation(len(per_image))[:600]  # enough for the leading directions; SVD cost ~ N^2
    residuals = []
    for k in chosen:
        person, s, w = per_image[k]
        seen = w > 0.05
        single = np.where(seen[:, None], s / np.maximum(w, 1e-9)[:, None], textures[index[person]])
        residuals.append((single - textures[index[person]]).reshape(-1))
    _, residual_basis, residual_variance = pca(np.stack(residuals), residual_components)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        format_version=np.int64(FORMAT_VERSION),
        mesh_signature=np.array(mesh_signature(mesh, size)),
        atlas_size=np.array(size),
        texels=texel_map.texels,
        mean=mean.astype(np.float32),
        basis=(basis * np.sqrt(variance)[:, None]).astype(np.float32),  # coefficient ~ N(0, 1)
        variance=variance.astype(np.float32),
        total_variance=np.float64(total_variance),
        train_coefficients=coefficients.astype(np.float32),
        train_identities=np.array([p for p, _, _ in per_identity]),
        residual_basis=(residual_basis * np.sqrt(residual_variance)[:, None]).astype(np.float32),
        report=np.array(json.dumps({"source": str(real), "landmarks": str(landmark_file), "used": used,
                                    "skipped": len(skipped), "bad_fits": bad_fits, "fit": fit})),
        **({"train_shapes": np.array(shapes, np.float32)} if fit == "landmarks68" else {}),
    )
    tmp.replace(out)
    return BuildReport(len(images), used, skipped, bad_fits, len(per_identity), len(basis),
                       float(variance.sum() / total_variance))


