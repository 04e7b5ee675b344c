"""Syn-LFW: a synthetic twin of LFW, and its identity-mixup attack variants Syn-LFW-R.

Same number of people and images as the LFW copy, the same ``pairs.txt`` (names mapped to
synthetic people), and each image's pose and light taken from its LFW original: pose from a
fit of the face model to the 5 landmarks, light from a spherical-harmonics fit to the
aligned photo's skin pixels. Expression, camera distance and background come from the
generator's priors (5 landmarks say little about expression). People come from the
``syn_lfw`` seed namespace, disjoint from every training set. Syn-LFW-R mixes every image's
identity with a random other Syn-LFW person at ratio R (paper Fig. 5), labels unchanged.

The output is an LFW-layout folder (``images/``, ``pairs.txt``, ``landmarks.txt``) that
``synface evaluate --benchmark DIR`` reads unchanged, plus ``attributes.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from synface.errors import DataNotFoundError, SynfaceError
from synface.facemodel.fitting import fit_pose, fit_sh_lighting
from synface.facemodel.latents import SamplerConfig, canonical_illumination
from synface.faces.landmarks import find_landmark_file, read_landmarks, write_landmarks
from synface.faces.pipeline import aligned_crops, list_images
from synface.faces.templates import parse_size, template
from synface.imageio import write_image
from synface.paths import cache_root
from synface.seeding import sample_rng

NAMESPACE = "syn_lfw"
RENDER_BATCH = 64


@dataclass
class SynLfwConfig:
    ratio: float | None = None  # identity-mixup attack ratio R (weight of the true identity)
    seed: int = 0
    size: str = "112x96"


def lfw_image_number(path: str) -> int:
    """``Name/Name_0003.jpg`` -> 3."""
    return int(Path(path).stem.rsplit("_", 1)[1])


def synthetic_name(index: int) -> str:
    return f"Syn_{index + 1:05d}"


def lfw_people(lfw_root: Path) -> tuple[list[str], list[str]]:
    """(sorted person names, sorted relative image paths) of an LFW-layout folder."""
    images = list_images(lfw_root / "images")
    if not images:
        raise DataNotFoundError(f"no images under {lfw_root / 'images'}")
    people = sorted({p.split("/")[0] for p in images})
    return people, images


def map_pairs_file(lfw_pairs: Path, names: dict[str, str]) -> str:
    """LFW's pairs.txt with every person's name replaced by their synthetic twin's."""
    if not lfw_pairs.is_file():
        raise DataNotFoundError(f"pairs file not found: {lfw_pairs}")
    lines = lfw_pairs.read_text().splitlines()
    out = [lines[0].strip()]
    for lineno, line in enumerate(lines[1:], 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 3:
            fields[0] = _lookup(names, fields[0], lfw_pairs, lineno)
        elif len(fields) == 4:
            fields[0] = _lookup(names, fields[0], lfw_pairs, lineno)
            fields[2] = _lookup(names, fields[2], lfw_pairs, lineno)
        else:
            raise SynfaceError(f"{lfw_pairs}:{lineno}: expected 'name n1 n2' or 'name1 n1 name2 n2'")
        out.append("\t".join(fields))
    return "\n".join(out) + "\n"


def _lookup(names: dict[str, str], name: str, path: Path, lineno: int) -> str:
    try:
        return names[name]
    except KeyError:
        raise SynfaceError(f"{path}:{lineno}: person {name!r} has no images under images/") from None


def skin_vertices(mesh, face_vertices: np.ndarray) -> np.ndarray:
    """Of the face region's vertices, those of forehead, cheeks and nose: skin whose colour
    is mostly light, not brows, eyes or lips."""
    pos = mesh.neutral.numpy()
    lm = pos[mesh.landmarks68]
    face = np.zeros(len(pos), bool)
    face[face_vertices] = True
    front = pos[:, 2] > 6.0
    away = np.ones(len(pos), bool)
    for idx, radius in ((range(17, 27), 1.2), (range(36, 48), 1.3), (range(48, 68), 1.0)):
        d = np.linalg.norm(pos[:, None, :2] - lm[None, list(idx), :2], axis=-1).min(1)
        away &= d > radius
    return np.flatnonzero(face & front & away)


class LfwAttributeFitter:
    """Pose and lighting of every image of an LFW-layout folder, cached on disk."""

    def __init__(self, generator) -> None:
        self.generator = generator
        mesh = generator.mesh
        self.points3d = np.stack([mesh.neutral[list(g)].mean(0).numpy() for g in mesh.five_point_groups])
        self.skin = skin_vertices(mesh, generator.face_vertices)
        zero = torch.zeros(1, generator.appearance.dim)
        self.skin_albedo = generator.appearance.skin_tone(zero)[0]

    def fit(self, lfw_root: Path, images: list[str]) -> dict[str, np.ndarray]:
        landmark_file = find_landmark_file(lfw_root)
        if landmark_file is None:
            raise DataNotFoundError(f"no landmark file in {lfw_root} (lfw_landmark.txt or landmarks.txt)")
        key = hashlib.sha1(landmark_file.read_bytes() + "\n".join(images).encode() + b"v2").hexdigest()[:16]
        cache = cache_root() / "syn_lfw" / f"attributes-{key}.npz"
        if cache.is_file():
            with np.load(cache) as data:
                return dict(data)
        table = read_landmarks(landmark_file)
        missing = [p for p in images if p not in table]
        if missing:
            raise SynfaceError(f"{landmark_file}: no landmarks for {len(missing)} images, e.g. {missing[0]}")
        poses, errors = [], []
        for path in tqdm(images, desc="fit pose", unit="img"):
            fit = fit_pose(table[path], self.points3d, annotated=True)
            poses.append(fit.pose)
            errors.append(fit.rms_error)
        poses = np.stack(poses)
        crops, _ = aligned_crops(lfw_root / "images", images, self.generator.size, landmark_file, desc="align lfw")
        lights = self._fit_lighting(crops, poses)
        result = {"pose": poses, "pose_rms": np.array(errors, np.float32), "illumination": lights}
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.stem + ".tmp.npz")
        np.savez(tmp, **result)
        tmp.replace(cache)
        return result

    def _fit_lighting(self, crops: np.ndarray, poses: np.ndarray) -> np.ndarray:
        g = self.generator
        h, w = g.size
        s = g.config.supersample
        prior = canonical_illumination()
        out = np.zeros((len(poses), 9, 3), np.float32)
        for start in tqdm(range(0, len(poses), RENDER_BATCH), desc="fit light", unit="batch"):
            stop = min(start + RENDER_BATCH, len(poses))
            latents = g.latents([0] * (stop - start), list(range(stop - start)), NAMESPACE)
            latents.shape[:] = 0.0
            latents.expression[:] = 0.0
            latents.pose[:] = poses[start:stop]
            geo = g.geometry(latents)
            pixels = (geo["pixels"][:, self.skin].numpy() + 0.5) / s - 0.5  # supersampled -> crop pixels
            normals = geo["normals"][:, self.skin].numpy()
            for b in range(stop - start):
                x, y = np.round(pixels[b, :, 0]).astype(int), np.round(pixels[b, :, 1]).astype(int)
                ok = (normals[b, :, 2] > 0.3) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
                if ok.sum() < 50:
                    out[start + b] = prior
                    continue
                colors = crops[start + b][y[ok], x[ok]].astype(np.float64) / 255.0
                out[start + b] = fit_sh_lighting(colors, normals[b, ok], self.skin_albedo, prior)
        return out


def build_syn_lfw(
    out: str | Path,
    lfw_root: str | Path,
    config: SynLfwConfig = SynLfwConfig(),
    only: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Write Syn-LFW (or Syn-LFW-R with ``config.ratio``) to ``out``; resumable (images that
    exist are kept). ``only`` renders a subset of LFW's images (smoke tests); pairs.txt is
    always whole."""
    from synface.generate.generator import FaceGenerator, GeneratorConfig, image_keys

    out, lfw_root = Path(out), Path(lfw_root)
    if config.ratio is not None and not 0.0 <= config.ratio <= 1.0:
        raise SynfaceError(f"mixup attack ratio must lie in [0, 1], got {config.ratio}")
    people, images = lfw_people(lfw_root)
    index = {name: k for k, name in enumerate(people)}
    names = {name: synthetic_name(k) for name, k in index.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "pairs.txt").write_text(map_pairs_file(lfw_root / "pairs.txt", names))

    size = parse_size(config.size)
    generator = FaceGenerator(GeneratorConfig(size=size, seed=config.seed, sampler=SamplerConfig()))
    selected = list(range(len(images))) if only is None else [images.index(p) for p in only]
    fitted = LfwAttributeFitter(generator).fit(lfw_root, [images[i] for i in selected])
    row_of = {i: r for r, i in enumerate(selected)}

    def target(i: int) -> str:
        person = images[i].split("/")[0]
        return f"{names[person]}/{names[person]}_{lfw_image_number(images[i]):04d}.png"

    todo = [i for i in selected if not (out / "images" / target(i)).is_file()]
    for start in tqdm(range(0, len(todo), RENDER_BATCH), desc="render syn-lfw", unit="batch", disable=not progress):
        batch = todo[start : start + RENDER_BATCH]
        people_k = [index[images[i].split("/")[0]] for i in batch]
        numbers = [lfw_image_number(images[i]) for i in batch]
        vectors = None
        if config.ratio is not None:
            partners = [attack_partner(config.seed, k, n, len(people)) for k, n in zip(people_k, numbers)]
            vectors = generator.mixed_identities(people_k, partners, config.ratio, NAMESPACE)
        latents = generator.latents(people_k, numbers, NAMESPACE, identity_vectors=vectors)
        rows = [row_of[i] for i in batch]
        latents.pose[:] = fitted["pose"][rows]
        latents.illumination[:] = fitted["illumination"][rows]
        keys = image_keys(people_k, numbers)
        for i, image in zip(batch, generator.render(latents, keys)):
            path = out / "images" / target(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".tmp.png")
            write_image(tmp, image)
            tmp.replace(path)

    # Crops are rendered aligned: their landmarks are the template's.
    points = template(size)
    write_landmarks(out / "landmarks.txt", {target(i): points for i in selected})
    _write_attributes(out / "attributes.csv", [(target(i), images[i]) for i in selected], fitted)
    info = {"ratio": config.ratio, "seed": config.seed, "size": list(size), "people": len(people),
            "images": len(images), "rendered": len(selected)}
    (out / "syn_lfw.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def attack_partner(seed: int, person: int, number: int, num_people: int) -> int:
    """The random other person mixed into image (person, number) of Syn-LFW-R."""
    rng = sample_rng(seed, "syn_lfw_partner", person, number)
    partner = int(rng.integers(num_people - 1))
    return partner + (partner >= person)


def _write_attributes(path: Path, rows: list[tuple[str, str]], attributes: dict) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["image", "lfw_source", "yaw_deg", "pitch_deg", "roll_deg", "pose_fit_rms", "light_dc_r",
                         "light_dc_g", "light_dc_b"])
        for i, (image, source) in enumerate(rows):
            yaw, pitch, roll = np.degrees(attributes["pose"][i])
            dc = attributes["illumination"][i][0]
            writer.writerow([image, source, f"{yaw:.2f}", f"{pitch:.2f}", f"{roll:.2f}",
                             f"{attributes['pose_rms'][i]:.4f}", *(f"{v:.3f}" for v in dc)])
