"""The controllable face generator: latents -> deformed mesh -> rasterised, aligned crops.

Every image is rendered directly in the aligned frame: the 5 landmarks (eye centres, nose tip,
mouth corners) are projected, the similarity that puts them on the template of
``synface.faces.templates`` is folded into the projection, and the face is rasterised at
``supersample`` times the crop size and box-filtered down. Real and synthetic crops therefore
share one template and one pixel convention.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from synface.errors import SynfaceError
from synface.facemodel.appearance import GLASSES, glasses_row, with_components
from synface.facemodel.basis import DEFAULT_BASIS_FIT, basis_fingerprint, check_basis_fit, default_basis_path
from synface.facemodel.hair import LOW_BAND_COMPONENTS, check_hairline
from synface.facemodel.learned import (DEFAULT_APPEARANCE, DEFAULT_APPEARANCE_PRIOR, PHOTO_RESIDUAL, build_appearance,
                                      ensure_basis)
from synface.facemodel.latents import Latents, SamplerConfig, mirror_light, sample_attributes, sample_identity, sh_basis
from synface.facemodel.model import FaceModel
from synface.facemodel.pose import rotation_matrices
from synface.facemodel.scenes import default_scenes_path, ensure_scenes, load_photo_lights, scenes_fingerprint
from synface.faces.align import RENDER_ALIGNMENTS, similarity_transform
from synface.faces.templates import parse_size, template
from synface.generate.mixup import mix_identities
from synface.generate.photo_background import (FACE_ONLY, FACE_ONLY_EXCLUDED_REGIONS, PHOTO_BACKGROUNDS, PhotoBackgrounds,
                                               composite)
from synface.generate.refiner import (DEFAULT_REFINER, default_refiner_path, ensure_refiner, load_refiner,
                                      refine_images, refiner_fingerprint)
from synface.seeding import background_photo_rng, glasses_rng, hair_rng, identity_rng, photo_variation_rng, sample_rng

# Bumped whenever the same latents render different pixels; datasets record it and refuse to
# resume with a different one.
GENERATOR_VERSION = "hair-shell-3"

# Identities whose coefficients FaceGenerator keeps (a few batches' worth).
IDENTITY_CACHE = 4096

# Renders are padded by this many pixels (at 112 px height; edge pixels repeated) before MTCNN
# looks for the face: a tight aligned crop has too little context for its proposal stage.
DETECT_PAD = 24

# The head turns about a point between the ears, roughly the top of the neck (cm).
PIVOT = np.array([0.0, 0.0, -1.0], np.float32)


@dataclass
class GeneratorConfig:
    size: tuple[int, int] = (112, 96)
    supersample: int = 2
    seed: int = 0
    slots: int = 64
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    model_path: str | None = None
    # Albedo model: procedural | learned | both (facemodel/learned.py: build_appearance);
    # ``appearance_path`` is the learned basis (default: the cached one of ``appearance_fit``).
    appearance: str = DEFAULT_APPEARANCE
    appearance_path: str | None = None
    # What the default basis unwrapped each photo onto (facemodel/basis.py: BASIS_FITS): the
    # mean face posed by 5 landmarks (cache/appearance/celeba-299.npz), or each person's own
    # shape fitted to dlib's 68 (celeba-299-landmarks68.npz; needs the ``judge`` extra).
    appearance_fit: str = DEFAULT_BASIS_FIT
    # Spread of the learned coefficients (1 = the real identities' spread). Wider makes
    # generated people more distinct to a real-trained recogniser (dlib's false accepts at
    # 0.6 in a one-off sweep of 100 identities x 6: 20.6 % at 1.0, 15.1 % at 1.25, 11.8 % at
    # 1.5) but not better training data: LFW accuracy at equal budget (2 seeds) was 77.6 % at
    # 1.25 and 77.2 % at 1.5, where some faces start to wash out to white
    # (reports/identity_richness.md).
    appearance_scale: float = 1.25
    # How a person's learned coefficients are drawn (facemodel/learned.py: APPEARANCE_PRIORS).
    appearance_prior: str = DEFAULT_APPEARANCE_PRIOR
    # Auto-exposure, as a camera does: the light is scaled so that the face's mean brightness
    # moves toward ``exposure`` (0..1), by the power ``exposure_strength`` (1 = all the way,
    # 0 = off). Without it dark skin under dim light renders nearly black, which no photo
    # of a person shows and which detectors miss.
    exposure: float = 0.45
    exposure_strength: float = 0.75
    # Background style: procedural | natural (drawn, render/background.py), or photos (the
    # head composited over an aligned real training photo) | photos_face (the face alone over
    # it), generate/photo_background.py.
    background: str = "procedural"
    # How renders are aligned: "exact", from the mesh's own 5 landmarks (as projected), or
    # "mtcnn", from the 5 points our MTCNN finds on the render, as photos are aligned (the
    # SynFace pipeline): the detector's landmark convention and its pose-dependent errors
    # (on frontal renders its mouth corners sit ~1 px higher and its eyes ~0.7 px lower than
    # the mesh's at 112x96; on the training pose prior, 2-5 px std per point). Costs a
    # detection and a second raster per image.
    alignment: str = "exact"
    # Pose and light fitted to real photos (facemodel/scenes.py), read when the sampler's
    # illumination_prior is "photos"; default cache/scenes/celeba-299.npz.
    scenes_path: str | None = None
    # A trained realism refiner (generate/refiner.py) applied to every crop after rendering:
    # a weights file, or "default" (the cached one, trained on first use); None: no refiner.
    refiner: str | None = None
    # Where hair starts (facemodel/hair.py: HAIRLINE_STYLES): "low", three bands, most people's
    # hair 2.6 cm above the brows; "high", the crown band alone, a usual forehead.
    hairline: str = "low"


def ensure_generator_inputs(config: GeneratorConfig) -> None:
    """Build what ``config`` renders from and does not find: the learned appearance basis
    (~2 min from celeba-299), the photo scenes (~1 min) and the default realism refiner
    (~10 min), with progress bars. Experiments and the dataset builder call it before anything
    asks for a signature."""
    if config.appearance != "procedural":
        _ensure_once(partial(ensure_basis, fit=config.appearance_fit), config.appearance_path,
                     default_basis_path(config.appearance_fit))
    if config.sampler.illumination_prior == "photos" or config.background in PHOTO_BACKGROUNDS:
        _ensure_once(ensure_scenes, config.scenes_path, default_scenes_path())
    if config.refiner:
        requested = None if config.refiner == DEFAULT_REFINER else config.refiner
        _ensure_once(ensure_refiner, requested, default_refiner_path())


_ENSURED: dict[Path, int] = {}  # file -> its mtime when ensured in this process


def _ensure_once(ensure, requested: str | None, default: Path) -> None:
    """``ensure(requested)`` (None: the default file, which it may build or rebuild), skipped
    when the file it stands for already passed in this process unchanged (checking a basis
    against the mesh takes ~0.7 s; a study plans dozens of runs)."""
    path = Path(requested) if requested is not None else default
    if path.is_file() and _ENSURED.get(path) == path.stat().st_mtime_ns:
        return
    found = Path(ensure(requested))
    _ENSURED[found] = found.stat().st_mtime_ns


def generator_signature(config: GeneratorConfig) -> str:
    """What decides a generator's pixels besides the latents: the code version, the appearance
    mode and, for learned modes, the basis file and spread, and options away from their
    defaults. Datasets record it (generator.txt). Hashes only, never builds: a missing basis
    or scenes file is an error saying how to make it (``ensure_generator_inputs`` does)."""
    if config.appearance == "procedural":
        signature = f"{GENERATOR_VERSION} appearance=procedural"
    else:
        signature = (f"{GENERATOR_VERSION} appearance={config.appearance} scale={config.appearance_scale} "
                     f"basis={basis_fingerprint(config.appearance_path or default_basis_path(config.appearance_fit))}")
        if config.appearance_fit != DEFAULT_BASIS_FIT:
            signature += f" fit={config.appearance_fit}"
        if config.appearance_prior != DEFAULT_APPEARANCE_PRIOR:
            signature += f" prior={config.appearance_prior}"
    if config.background in PHOTO_BACKGROUNDS:
        signature += f" background={config.background}:{scenes_fingerprint(config.scenes_path)}"
    elif config.background != "procedural":
        signature += f" background={config.background}"
    if config.alignment != "exact":
        signature += f" alignment={config.alignment}"
    if config.sampler.illumination_prior == "photos":
        signature += f" light=photos:{scenes_fingerprint(config.scenes_path)}"
    if config.refiner:
        signature += f" refiner={refiner_fingerprint(config.refiner)}"
    if config.hairline != "low":
        signature += f" hairline={config.hairline}"
    return signature


class FaceGenerator:
    def __init__(self, config: GeneratorConfig | None = None, model: FaceModel | None = None) -> None:
        self.config = config or GeneratorConfig()
        if self.config.alignment not in RENDER_ALIGNMENTS:
            raise SynfaceError(f"unknown alignment {self.config.alignment!r}; choose from {', '.join(RENDER_ALIGNMENTS)}")
        check_basis_fit(self.config.appearance_fit)
        self.size = parse_size(self.config.size)
        self.model = model or FaceModel.load(self.config.model_path)
        self.mesh = self.model.render_mesh()
        self.appearance = build_appearance(
            self.model, self.config.appearance, self.config.appearance_path, self.config.appearance_scale,
            self.config.appearance_prior, photo_residuals=self.config.sampler.photo_variation > 0,
            fit=self.config.appearance_fit, hairline=check_hairline(self.config.hairline),
        )
        h, w = self.size
        s = self.config.supersample
        self.render_size = (h * s, w * s)
        self.render_template = template(self.render_size)
        self._basis64 = torch.cat([self.mesh.id_basis, self.mesh.exp_basis, self.mesh.hair_basis]).double()
        # Vertices of the face region (not scalp, neck, eyes or mouth interior).
        self.face_vertices = np.flatnonzero(self.mesh.region == self.model.region_names.index("face"))
        self._renderer = None
        self._identities: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._photo_lights: np.ndarray | None = None
        self._photo_backgrounds: PhotoBackgrounds | None = None
        self._detector = None
        self.detector_misses = 0
        self._refiner = load_refiner(self.config.refiner) if self.config.refiner else None
        # Appearance components that are hair (painted colour and shell volume).
        self.hair_columns = [i for i, name in enumerate(self.appearance.names) if name.startswith("hair_")]
        # What a high hairline leaves unused: the lower bands' paint and shell thickness.
        self.low_band_columns = ([self.appearance.names.index(n) for n in LOW_BAND_COMPONENTS]
                                 if self.config.hairline == "high" else [])
        # Hair every image goes without: for photos_face all of it (the photo's own hair frames
        # the face, none is painted on the forehead), else what the hairline leaves unused.
        self.hairless_columns = self.hair_columns if self.config.background == FACE_ONLY else self.low_band_columns
        self.residual_columns = [i for i, name in enumerate(self.appearance.names) if name.startswith(PHOTO_RESIDUAL)]
        if self.config.sampler.glasses > 0:
            self.appearance = with_components(self.appearance, [GLASSES], glasses_row(self.model, self.appearance.size)[None])
        self.glasses_column = self.appearance.names.index(GLASSES) if GLASSES in self.appearance.names else None
        self.timings: dict[str, float] = {}

    def photo_lights(self, sampler: SamplerConfig) -> np.ndarray | None:
        """The lights fitted to real photos, loaded once, when ``sampler`` draws from them."""
        if sampler.illumination_prior != "photos":
            return None
        if self._photo_lights is None:
            self._photo_lights = load_photo_lights(self.config.scenes_path)
        return self._photo_lights

    @property
    def photo_backgrounds(self) -> PhotoBackgrounds:
        """The real photos heads are composited over (``background: photos``), loaded once."""
        if self._photo_backgrounds is None:
            self._photo_backgrounds = PhotoBackgrounds.load(self.size, self.config.scenes_path)
        return self._photo_backgrounds

    def drawn_triangles(self) -> np.ndarray:
        """The triangles rendered: the whole head, or for ``photos_face`` the face without the
        head, neck, ears and hair shell, which the photo behind it shows instead."""
        faces = self.mesh.faces.numpy()
        if self.config.background != FACE_ONLY:
            return faces
        excluded = [self.model.region_names.index(r) for r in FACE_ONLY_EXCLUDED_REGIONS]
        dropped = np.isin(np.asarray(self.mesh.region), excluded) | np.asarray(self.mesh.is_shell)
        return faces[~dropped[faces].any(axis=1)]

    @property
    def renderer(self):
        if self._renderer is None:
            from synface.render.gl import MeshRenderer

            drawn = "procedural" if self.config.background in PHOTO_BACKGROUNDS else self.config.background
            self._renderer = MeshRenderer(
                *self.size, self.drawn_triangles(), self.mesh.uv, self.appearance.size, self.config.slots,
                self.config.supersample, drawn,
            )
        return self._renderer

    # ---- latents -------------------------------------------------------------------------
    def identity(self, identity: int, namespace: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(shape, appearance) of identity ``identity`` in ``namespace``.

        Cached: a dataset batch holds many images of each identity, and drawing the same
        coefficients again for each was a third of the latent sampling time."""
        sampler = self.config.sampler
        key = (self.config.seed, namespace, int(identity), sampler.shape_scale, sampler.shape_truncation)
        found = self._identities.get(key)
        if found is None:
            rng = identity_rng(self.config.seed, namespace, identity)
            found = sample_identity(rng, self.model.num_shape, sampler, self.appearance.sample)
            people = self.appearance.people
            if people is not None:
                found[1][: people.shape[1]] = people[int(identity) % len(people)]
            if len(self._identities) >= IDENTITY_CACHE:
                self._identities.clear()
            self._identities[key] = found
        return found[0].copy(), found[1].copy()

    def latents(
        self,
        identities: list[int],
        samples: list[int],
        namespace: str = "train",
        identity_vectors: np.ndarray | None = None,
        sampler: SamplerConfig | None = None,
    ) -> Latents:
        """Latents of images (identity[i], sample[i]); ``identity_vectors`` (B, S+K) overrides
        the identity part (identity mixup), the attributes still come from (identity, sample)."""
        sampler = sampler or self.config.sampler
        lights = self.photo_lights(sampler)
        rows = []
        for b, (ident, sample) in enumerate(zip(identities, samples)):
            shape, appearance = self.identity(ident, namespace)
            if identity_vectors is not None:
                shape, appearance = identity_vectors[b, : len(shape)], identity_vectors[b, len(shape) :]
            if sampler.hair_change > 0:
                appearance = self.maybe_change_hair(appearance, sampler.hair_change, namespace, ident, sample)
            if self.hairless_columns:
                appearance = np.array(appearance, np.float32)
                appearance[self.hairless_columns] = 0.0
            if sampler.photo_variation > 0:
                appearance = self.with_photo_variation(appearance, sampler.photo_variation, namespace, ident, sample)
            if sampler.glasses > 0:
                appearance = self.maybe_add_glasses(appearance, sampler.glasses, namespace, ident, sample)
            rng = sample_rng(self.config.seed, namespace, ident, sample)
            attrs = sample_attributes(rng, self.model.exp_names, sampler, lights)
            photo = np.array([-1.0, 0.0], np.float32)
            if self.config.background in PHOTO_BACKGROUNDS:
                photo = self.choose_background_photo(attrs, sampler, namespace, ident, sample)
            rows.append(
                Latents(
                    shape=np.asarray(shape, np.float32)[None],
                    appearance=np.asarray(appearance, np.float32)[None],
                    expression=attrs["expression"][None],
                    illumination=attrs["illumination"][None],
                    pose=attrs["pose"][None],
                    camera_distance=np.array([attrs["camera_distance"]], np.float32),
                    background=attrs["background"][None],
                    background_photo=photo[None],
                )
            )
        return Latents.stack(rows)

    def mixed_identities(self, identities, partners, phi, namespace: str = "train") -> np.ndarray:
        """Identity mixup (paper Eq. 2) of two lists of identities: rows of
        φ·α(identity) + (1 − φ)·α(partner), the ``identity_vectors`` ``latents`` takes."""
        own = np.stack([np.concatenate(self.identity(int(i), namespace)) for i in identities])
        other = np.stack([np.concatenate(self.identity(int(p), namespace)) for p in partners])
        return mix_identities(own, other, np.broadcast_to(np.asarray(phi, np.float32), (len(own),)))

    def choose_background_photo(self, attrs: dict, sampler: SamplerConfig, namespace: str, identity: int,
                                sample: int) -> np.ndarray:
        """[photo index, mirrored] of the real photo this image's head is composited over,
        from the image's own stream, matched to its yaw. With photo light, ``attrs`` takes
        that photo's own fitted light (mirrored with it), so face and surroundings are lit
        alike; the attribute stream's draws stay as they were."""
        rng = background_photo_rng(self.config.seed, namespace, identity, sample)
        index, mirrored = self.photo_backgrounds.choose(rng, float(attrs["pose"][0]))
        if sampler.illumination_prior == "photos" and "illumination" in sampler.vary:
            light = self.photo_lights(sampler)[index]
            attrs["illumination"] = mirror_light(light) if mirrored else light.copy()
        return np.array([index, float(mirrored)], np.float32)

    def maybe_change_hair(self, appearance: np.ndarray, probability: float, namespace: str, identity: int,
                          sample: int) -> np.ndarray:
        """``appearance`` with, at ``probability``, the hair (colour and volume components) of
        a random donor person instead of its own."""
        rng = hair_rng(self.config.seed, namespace, identity, sample)
        if rng.random() >= probability:
            return appearance
        donor = self.identity(int(rng.integers(2**31)), "hair_donor")[1]
        out = np.array(appearance, np.float32)
        out[self.hair_columns] = donor[self.hair_columns]
        return out

    def with_photo_variation(self, appearance: np.ndarray, spread: float, namespace: str, identity: int,
                             sample: int) -> np.ndarray:
        """``appearance`` with this image's own within-person skin variation: the photo
        residual coefficients drawn ~ N(0, spread²) from the image's own stream."""
        if not self.residual_columns:
            raise SynfaceError("photo_variation needs the learned basis's photo residuals: build the generator "
                               "with a sampler whose photo_variation > 0 and a learned appearance")
        rng = photo_variation_rng(self.config.seed, namespace, identity, sample)
        out = np.array(appearance, np.float32)
        out[self.residual_columns] = spread * rng.standard_normal(len(self.residual_columns))
        return out

    def maybe_add_glasses(self, appearance: np.ndarray, probability: float, namespace: str, identity: int,
                          sample: int) -> np.ndarray:
        """``appearance`` wearing spectacles at ``probability``, decided by the image's own stream."""
        if self.glasses_column is None:
            raise SynfaceError("glasses needs the spectacles component: build the generator with a sampler "
                               "whose glasses > 0")
        out = np.array(appearance, np.float32)
        out[self.glasses_column] = float(glasses_rng(self.config.seed, namespace, identity, sample).random() < probability)
        return out

    # ---- geometry ------------------------------------------------------------------------
    def geometry(self, latents: Latents) -> dict[str, torch.Tensor]:
        """Posed vertices' aligned pixel positions, depth, normals and the 5 landmarks.

        Each image's numbers must not depend on the rest of its batch (determinism): the one
        big product, coefficients x basis, runs in float64 and is rounded to float32, which
        hides BLAS's batch-size-dependent summation order; the rest is elementwise.
        """
        mesh = self.mesh
        hair = self.appearance.hair_geometry(latents.appearance)
        coeffs = torch.from_numpy(np.concatenate([latents.shape, latents.expression, hair], axis=1)).double()
        verts = mesh.neutral + (coeffs @ self._basis64).float().view(len(latents), -1, 3)
        rot = torch.from_numpy(rotation_matrices(latents.pose).astype(np.float32))
        pivot = torch.from_numpy(PIVOT)
        verts = _linear3(verts - pivot, rot) + pivot
        normals = vertex_normals(verts, mesh.faces)
        # Pinhole camera on +z looking at the origin; focal length 1 (alignment rescales).
        z_cam = torch.from_numpy(latents.camera_distance)[:, None] - verts[..., 2]
        image = torch.stack([verts[..., 0] / z_cam, -verts[..., 1] / z_cam], dim=-1)
        five = torch.stack([image[:, list(group)].mean(1) for group in mesh.five_point_groups], dim=1)  # (B, 5, 2)
        matrices = torch.from_numpy(
            np.stack([similarity_transform(p, self.render_template) for p in five.double().numpy()]).astype(np.float32)
        )
        pixels = _affine2(image, matrices)
        # Depth: 0..1 over a 60 cm slab around the face.
        near = torch.from_numpy(latents.camera_distance)[:, None] - 30.0
        depth = ((z_cam - near) / 60.0).clamp(0.0, 1.0)
        return {
            "pixels": pixels,  # (B, V, 2) in the supersampled aligned frame
            "depth": depth,
            "normals": normals,
            "landmarks5": _affine2(five, matrices),  # aligned, supersampled frame
            "camera_image": image,  # (B, V, 2) before alignment (focal length 1)
            "alignment": matrices,
        }

    # ---- images --------------------------------------------------------------------------
    def render(self, latents: Latents, keys: np.ndarray | None = None) -> np.ndarray:
        """uint8 (B, h, w, 3) aligned crops. ``keys`` fix each image's atlas slot; pass a
        stable per-image number (e.g. its index in the dataset) for batch-independent bytes."""
        keys = np.arange(len(latents)) if keys is None else np.asarray(keys)
        t0 = time.perf_counter()
        geo = self.geometry(latents)
        coefficients = torch.from_numpy(latents.appearance)
        # A dataset batch holds several images of each identity: each distinct texture is
        # computed once (a row's float64 product does not depend on the rows beside it).
        distinct, inverse = np.unique(latents.appearance, axis=0, return_inverse=True)
        textures = self.appearance.texture_bytes(torch.from_numpy(distinct))[inverse.reshape(-1)]
        photos = self.background_photos(latents)
        targets = None if photos is None else self.photo_backgrounds.face_brightness[latents.background_photo[:, 0].astype(np.int64)]
        gain = self.exposure_gain(self.appearance.skin_tone(coefficients), latents.illumination, targets)
        light = latents.illumination * gain[:, None, None]
        t1 = time.perf_counter()
        specular = self.appearance.specular(latents.appearance)

        def draw(pixels: torch.Tensor) -> np.ndarray:
            # A drawn background is drawn and composited by the renderer's downsample pass.
            rendered = self.renderer.render(pixels.numpy(), geo["depth"].numpy(), geo["normals"].numpy(), textures,
                                            light.astype(np.float32), specular, keys,
                                            None if photos is not None else latents.background)
            return rendered if photos is None else composite(rendered, photos)

        images = draw(geo["pixels"])
        t2 = time.perf_counter()
        self._add_time("geometry", t1 - t0)
        self._add_time("raster", t2 - t1)
        if self.config.alignment == "mtcnn":
            correction = self.detector_realignment(images)
            t3 = time.perf_counter()
            images = draw(_affine2(geo["pixels"], correction))
            self._add_time("detect", t3 - t2)
            self._add_time("raster", time.perf_counter() - t3)
        if self._refiner is not None:
            t4 = time.perf_counter()
            images = refine_images(self._refiner, images)
            self._add_time("refine", time.perf_counter() - t4)
        return images

    def _add_time(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    @property
    def detector(self):
        if self._detector is None:
            from synface.faces.mtcnn import MTCNN

            self._detector = MTCNN()
        return self._detector

    def detector_realignment(self, images: np.ndarray) -> torch.Tensor:
        """(B, 2, 3) similarities of the supersampled aligned frame that move the 5 points our
        MTCNN finds on each exactly aligned render onto the template, so that the re-render
        is aligned as a photo is: with the detector's own landmark convention and its errors.
        Renders where MTCNN finds no face keep their exact alignment (counted in
        ``detector_misses``).

        Each image is detected alone (a batch's convolutions may round differently) and its
        points are rounded to 1/1000 px, so that an image's bytes do not depend on its batch."""
        h, w = self.size
        s = self.config.supersample
        pad = max(8, round(DETECT_PAD * h / 112))
        out = np.tile(np.eye(2, 3), (len(images), 1, 1))
        for b, image in enumerate(images):
            padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
            found = self.detector.detect([padded])[0]
            k = found.main_face(padded.shape)
            if k is None:
                self.detector_misses += 1
                continue
            points = np.round(found.landmarks[k].astype(np.float64) - pad, 3)
            out[b] = similarity_transform((points + 0.5) * s - 0.5, self.render_template)
        return torch.from_numpy(out.astype(np.float32))

    def background_photos(self, latents: Latents) -> np.ndarray | None:
        """(B, h, w, 3) the real photos behind each head, or None for a drawn background."""
        if self.config.background not in PHOTO_BACKGROUNDS:
            return None
        choice = latents.background_photo
        if choice is None or np.any(choice[:, 0] < 0):
            raise SynfaceError("background 'photos' needs latents with a chosen photo (FaceGenerator.latents "
                               "draws one per image)")
        photos = self.photo_backgrounds
        return np.stack([photos.image(int(index), bool(mirrored)) for index, mirrored in choice])

    def exposure_gain(self, skin_tone: np.ndarray, illumination: np.ndarray,
                      targets: np.ndarray | None = None) -> np.ndarray:
        """(B,) light scale of auto-exposure, from each image's own skin tone (B, 3) and light,
        toward ``config.exposure`` or each image's own target brightness (B,)."""
        strength = self.config.exposure_strength
        if strength <= 0:
            return np.ones(len(skin_tone))
        facing = sh_basis(np.array([0.0, 0.0, 1.0]))  # irradiance on a face-on surface
        gains = []
        for b in range(len(skin_tone)):  # per image, in float64: no batch-dependent reduction
            skin = skin_tone[b]
            brightness = float((skin * (facing @ illumination[b].astype(np.float64))).mean())
            target = self.config.exposure if targets is None else float(targets[b])
            gains.append(np.clip((target / max(brightness, 1e-3)) ** strength, 0.5, 4.0))
        return np.array(gains)

    def generate(self, identities: list[int], samples: list[int], namespace: str = "train") -> np.ndarray:
        """Images (identity[i], sample[i]); each one's bytes depend only on its own
        (seed, namespace, identity, sample), whatever else is in the call."""
        keys = image_keys(identities, samples)
        return self.render(self.latents(identities, samples, namespace), keys)


def image_key(identity: int, sample: int) -> int:
    """A stable atlas slot key: consecutive samples of one identity get consecutive slots."""
    return int(identity) * 50 + int(sample)


def image_keys(identities, samples) -> np.ndarray:
    """``image_key`` of each (identity, sample) pair, as the array ``render`` takes."""
    return np.array([image_key(i, s) for i, s in zip(identities, samples)], np.int64)


def _linear3(points: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) @ (B, 3, 3)^T, written elementwise so no BLAS kernel choice depends on B."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    rows = [m[:, r, 0, None] * x + m[:, r, 1, None] * y + m[:, r, 2, None] * z for r in range(3)]
    return torch.stack(rows, dim=-1)


def _affine2(points: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Apply (B, 2, 3) affine matrices to (B, N, 2) points, elementwise."""
    x, y = points[..., 0], points[..., 1]
    rows = [m[:, r, 0, None] * x + m[:, r, 1, None] * y + m[:, r, 2, None] for r in range(2)]
    return torch.stack(rows, dim=-1)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals (B, V, 3) of triangle meshes sharing ``faces``.

    Computed on coordinate planes (3, V, B): gathering and scattering whole rows of B numbers
    is several times faster than strided per-image gathers, and the cross product written
    per plane is three times faster than ``torch.cross`` on a trailing axis of 3. Every step
    is elementwise or a fixed-order sum, so no image depends on its batch."""
    planes = verts.permute(2, 1, 0).contiguous()
    a, b, c = planes[:, faces[:, 0]], planes[:, faces[:, 1]], planes[:, faces[:, 2]]
    (ux, uy, uz), (vx, vy, vz) = b - a, c - a
    face_normals = torch.stack([uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx])
    normals = torch.zeros_like(planes)
    for k in range(3):
        normals.index_add_(1, faces[:, k], face_normals)
    normals = normals / normals.square().sum(0).sqrt().clamp_min(1e-12)
    return normals.permute(2, 1, 0).contiguous()
