"""Scenes of real photos: the head pose and the light fitted to each photo of a real identity
folder (celeba-299), so the generator can draw its camera and light from what photographs
show instead of from hand-set priors.

``synface real-scenes`` (or the first generator that asks for photo light) fits every photo
that the appearance basis would use, with the same two fits (``learned.py``): the mean face's
weak-perspective pose from the 5 landmarks, and a spherical-harmonics light to the visible
skin. Lights are stored normalised: each is scaled so that a face-on surface receives the
canonical light's luminance (the photo's exposure is the camera's, not the scene's; the
renderer's auto-exposure sets the level). Poses carry the annotation pitch offset of
``fitting.py`` removed, as for any detector's landmarks.

Only training-side photos belong here: LFW is a test set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from synface.errors import DataNotFoundError, SynfaceError
from synface.facemodel.appearance import atlas_size
from synface.facemodel.basis_builder import (
    MAX_POSE_RMS, TexelMap, Unwrapper, list_real_images, luminance, project_mean_face,
)
from synface.facemodel.fitting import ANNOTATION_PITCH_OFFSET_DEG
from synface.facemodel.latents import canonical_illumination, sh_basis
from synface.facemodel.model import FaceModel
from synface.imageio import read_rgb
from synface.paths import cache_root

SCENES_VERSION = 1


def default_scenes_path() -> Path:
    return cache_root() / "scenes" / "celeba-299.npz"


def face_on_luminance(light: np.ndarray) -> float:
    return float(luminance(sh_basis(np.array([0.0, 0.0, 1.0])) @ np.asarray(light, np.float64)))


def normalise_light(light: np.ndarray) -> np.ndarray:
    """``light`` scaled so a face-on surface gets the canonical light's luminance."""
    target = face_on_luminance(canonical_illumination())
    return (np.asarray(light, np.float64) * target / max(face_on_luminance(light), 1e-3)).astype(np.float32)


def build_photo_scenes(
    real: str | Path, out: str | Path, model: FaceModel | None = None, progress: bool = True,
    max_identities: int | None = None,
) -> dict:
    """Fit pose and light to every photo of ``real`` (of its first ``max_identities`` people)
    and write ``out`` (.npz): poses (N, 3) yaw/pitch/roll radians, lights (N, 9, 3), files
    (N,). Returns a summary."""
    real, out = Path(real), Path(out)
    table, _ = list_real_images(real)
    if max_identities:
        people = sorted({rel.split("/")[0] for rel in table})[:max_identities]
        table = {rel: v for rel, v in table.items() if rel.split("/")[0] in people}
    model = model or FaceModel.load()
    mesh = model.render_mesh()
    unwrapper = Unwrapper(mesh, TexelMap.build(mesh, atlas_size(), model.region_names), canvas=(256, 256))
    poses, lights, files = [], [], []
    skipped = 0
    try:
        for rel in tqdm(sorted(table), desc="fit real scenes", unit="img", disable=not progress):
            try:
                image = read_rgb(real / rel).astype(np.float64) / 255.0
            except (SynfaceError, OSError) as exc:
                tqdm.write(f"skipped {rel}: {exc}")
                skipped += 1
                continue
            fit, pixels, depth, rotation = project_mean_face(mesh, table[rel])
            light = None if fit.rms_error > MAX_POSE_RMS else unwrapper.fit_light(image, pixels, depth, rotation)
            if light is None:
                skipped += 1
                continue
            pose = fit.pose.astype(np.float64)
            pose[1] -= np.radians(ANNOTATION_PITCH_OFFSET_DEG)
            poses.append(pose)
            lights.append(normalise_light(light))
            files.append(rel)
    finally:
        unwrapper.close()
    if len(lights) < 10:
        raise SynfaceError(f"{real}: only {len(lights)} photos could be fitted; need at least 10")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, version=np.int64(SCENES_VERSION), poses=np.array(poses, np.float32),
             lights=np.array(lights, np.float32), files=np.array(files), source=np.array(str(real)))
    tmp.replace(out)
    return {"photos": len(table), "fitted": len(lights), "skipped": skipped, "pose_spread": pose_spread(np.array(poses))}


def ensure_scenes(path: str | Path | None = None) -> Path:
    """The scenes file: ``path`` as given, or the default one, fitted from
    ``$SYNFACE_DATA/celeba-299`` on first use (about a minute on 2 cores; cached)."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"photo scenes file not found: {path}")
        return path
    path = default_scenes_path()
    if path.is_file() and _version(path) == SCENES_VERSION:
        return path
    from synface.paths import data_path

    real = data_path("celeba-299")
    tqdm.write(f"fitting pose and light to the photos of {real} into {path} (once; cached)")
    build_photo_scenes(real, path)
    return path


def _version(path: Path) -> int:
    with np.load(path) as z:
        return int(z["version"]) if "version" in z.files else 0


def load_photo_lights(path: str | Path | None = None) -> np.ndarray:
    with np.load(ensure_scenes(path)) as z:
        return z["lights"].astype(np.float32)


def scenes_fingerprint(path: str | Path | None = None) -> str:
    """A short hash of a scenes file's bytes. Hashes only: a missing file is an error naming
    how to make it, never a fit."""
    path = Path(path) if path is not None else default_scenes_path()
    if not path.is_file():
        raise DataNotFoundError(f"photo scenes not found: {path}; fit them with `synface appearance scenes` "
                                "(`synface generate`, `demo`, `ab` and `reproduce` fit them on their own)")
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def pose_spread(poses: np.ndarray) -> dict:
    """Per angle (degrees): std, robust std (1.4826 x MAD) and the 90th percentile of |angle|."""
    deg = np.degrees(np.asarray(poses, np.float64))
    median = np.median(deg, axis=0)
    out = {}
    for k, name in enumerate(("yaw", "pitch", "roll")):
        out[name] = {"std": round(float(deg[:, k].std()), 2),
                     "robust_std": round(float(1.4826 * np.median(np.abs(deg[:, k] - median[k]))), 2),
                     "abs_p90": round(float(np.percentile(np.abs(deg[:, k]), 90)), 2)}
    return out
