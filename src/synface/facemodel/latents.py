"""The latent factors of one image, named as in the paper, and their priors.

identity α = [shape (100), appearance (K)]; expression β (57 blendshape weights);
illumination γ (9 SH coefficients × RGB); pose θ (yaw, pitch, roll, radians);
other: camera distance (cm) and background parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from synface.config import ADDED_OPTION

ATTRIBUTES = ("expression", "pose", "illumination")
# Where varied illumination comes from: "studio", an ambient plus one directional light of
# random colour temperature (sample_illumination); "photos", the light fitted to a random
# real training photo, mirrored half the time (facemodel/scenes.py).
ILLUMINATION_PRIORS = ("studio", "photos")
NUM_SH = 9
NUM_BACKGROUND = 8
# Real SH basis constants for bands 0..2 (the shader evaluates the same polynomials).
_SH_CONST = np.array([0.282095, 0.488603, 0.488603, 0.488603, 1.092548, 1.092548, 0.315392, 1.092548, 0.546274])
# Lambertian convolution per band (Ramamoorthi & Hanrahan 2001), divided by pi.
_LAMBERT = np.array([1.0, 2 / 3, 2 / 3, 2 / 3, 1 / 4, 1 / 4, 1 / 4, 1 / 4, 1 / 4])


@dataclass
class Latents:
    """A batch of latent factors; row i describes image i."""

    shape: np.ndarray  # (B, 100)
    appearance: np.ndarray  # (B, K)
    expression: np.ndarray  # (B, 57)
    illumination: np.ndarray  # (B, 9, 3)
    pose: np.ndarray  # (B, 3) yaw, pitch, roll
    camera_distance: np.ndarray  # (B,)
    background: np.ndarray  # (B, NUM_BACKGROUND)
    # (B, 2) [photo index, mirrored] of the real photo behind each head, for the generator's
    # ``background: photos`` (generate/photo_background.py); rows of -1 (or None) where the
    # background is drawn.
    background_photo: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.shape)

    @property
    def identity(self) -> np.ndarray:
        """α = [shape, appearance], the vector identity mixup mixes."""
        return np.concatenate([self.shape, self.appearance], axis=1)

    @staticmethod
    def stack(items: list[Latents]) -> Latents:
        def joined(name):
            parts = [getattr(it, name) for it in items]
            return None if any(p is None for p in parts) else np.concatenate(parts)

        return Latents(**{f: joined(f) for f in Latents.__dataclass_fields__})

    def row(self, i: int) -> Latents:
        return Latents(**{f: None if getattr(self, f) is None else getattr(self, f)[i : i + 1]
                          for f in Latents.__dataclass_fields__})


@dataclass
class SamplerConfig:
    """Priors. ``vary`` names the attributes that change between images of one identity;
    the others take their canonical value (neutral, frontal, even light), as in the
    paper's Non / Expression / Pose / Illumination studies."""

    vary: tuple[str, ...] = ATTRIBUTES
    shape_truncation: float = 2.5  # |w| <= this, w ~ N(0, 1)
    shape_scale: float = 1.0
    yaw_std_deg: float = 22.0  # LFW-like: most faces within ±30°, tails to ±60°
    yaw_max_deg: float = 60.0
    pitch_std_deg: float = 9.0
    pitch_max_deg: float = 30.0
    roll_std_deg: float = 6.0
    roll_max_deg: float = 25.0
    expression_rate: float = 2.0  # mean number of active blendshape groups
    camera_distance_cm: tuple[float, float] = (45.0, 130.0)
    other: dict = field(default_factory=dict)
    illumination_prior: str = field(default="studio", metadata=ADDED_OPTION)
    # Probability that an image shows another haircut: the hair colour and volume of a random
    # other person (namespace hair_donor), as the same person's photos taken years apart do.
    hair_change: float = field(default=0.0, metadata=ADDED_OPTION)
    # Per image, how much of real photos' within-person skin variation to add: coefficients
    # ~ N(0, photo_variation²) on the learned basis's residual components (what one photo of
    # a person shows beyond their average texture: make-up, flush, stubble, light the SH fit
    # missed). 0 = off; 1 = as much as one celeba-299 photo shows. Needs a learned appearance.
    photo_variation: float = field(default=0.0, metadata=ADDED_OPTION)
    # Probability that an image shows spectacles (dark frames painted on the skin,
    # facemodel/appearance.py: glasses_row), decided per photo as people wear them on and off.
    glasses: float = field(default=0.0, metadata=ADDED_OPTION)

    def __post_init__(self) -> None:
        if self.photo_variation < 0:
            raise ValueError(f"photo_variation is a spread >= 0, got {self.photo_variation}")
        if not 0.0 <= self.glasses <= 1.0:
            raise ValueError(f"glasses is a probability in [0, 1], got {self.glasses}")
        if not 0.0 <= self.hair_change <= 1.0:
            raise ValueError(f"hair_change is a probability in [0, 1], got {self.hair_change}")
        if self.illumination_prior not in ILLUMINATION_PRIORS:
            raise ValueError(f"unknown illumination_prior {self.illumination_prior!r}; "
                             f"choose from {', '.join(ILLUMINATION_PRIORS)}")
        unknown = set(self.vary) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"unknown attributes in vary: {sorted(unknown)}; choose from {ATTRIBUTES}")


def truncated_normal(rng: np.random.Generator, std: float, limit: float, size=None) -> np.ndarray:
    x = rng.normal(0.0, std, size)
    bad = np.abs(x) > limit
    while np.any(bad):
        x = np.where(bad, rng.normal(0.0, std, np.shape(x)), x)
        bad = np.abs(x) > limit
    return x


def sample_identity(
    rng: np.random.Generator, num_shape: int, config: SamplerConfig,
    sample_appearance: Callable[[np.random.Generator], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Shape ~ truncated N(0, 1) (scaled), then appearance from the appearance model's prior."""
    shape = config.shape_scale * truncated_normal(rng, 1.0, config.shape_truncation, num_shape)
    return shape.astype(np.float32), sample_appearance(rng)


# Expression groups: blendshapes that move together, with the range of their weight.
EXPRESSION_GROUPS = [
    (("mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R"), 0.2, 1.0),
    (("jawOpen",), 0.1, 0.6),
    (("mouthFrown_L", "mouthFrown_R"), 0.2, 1.0),
    (("browInnerUp_L", "browInnerUp_R"), 0.2, 1.0),
    (("browOuterUp_L", "browOuterUp_R"), 0.2, 1.0),
    (("browDown_L", "browDown_R"), 0.2, 1.0),
    (("eyeBlink_L", "eyeBlink_R"), 0.3, 1.0),
    (("eyeSquint_L", "eyeSquint_R"), 0.2, 1.0),
    (("eyeWide_L", "eyeWide_R"), 0.2, 1.0),
    (("mouthPucker",), 0.2, 1.0),
    (("mouthFunnel",), 0.2, 0.8),
    (("mouthStretch_L", "mouthStretch_R"), 0.2, 0.8),
    (("mouthPress_L", "mouthPress_R"), 0.2, 1.0),
    (("mouthLeft",), 0.2, 0.8),
    (("mouthRight",), 0.2, 0.8),
    (("noseSneer_L", "noseSneer_R"), 0.2, 0.8),
    (("mouthUpperUp_L", "mouthUpperUp_R"), 0.2, 0.8),
    (("mouthLowerDown_L", "mouthLowerDown_R"), 0.2, 0.8),
    (("mouthDimple_L", "mouthDimple_R"), 0.2, 1.0),
    (("cheekPuff_L", "cheekPuff_R"), 0.2, 0.8),
    (("mouthRollLower", "mouthRollUpper"), 0.2, 0.8),
    (("mouthShrugLower", "mouthShrugUpper"), 0.2, 0.8),
    (("mouthSmile_L",), 0.2, 1.0),  # one-sided smirk
]
_GAZE = [("eyeLookOut_L", "eyeLookIn_R"), ("eyeLookIn_L", "eyeLookOut_R"), ("eyeLookUp_L", "eyeLookUp_R"),
         ("eyeLookDown_L", "eyeLookDown_R")]


def sample_expression(rng: np.random.Generator, names: list[str], rate: float) -> np.ndarray:
    """Sparse, realistic blendshape combinations: a Poisson number of groups, each with a
    symmetric weight (small left/right jitter), plus an occasional gaze shift."""
    index = {n: i for i, n in enumerate(names)}
    weights = np.zeros(len(names), np.float32)
    groups = [g for g in EXPRESSION_GROUPS if all(n in index for n in g[0])]
    count = min(rng.poisson(rate), len(groups))
    for k in rng.choice(len(groups), size=count, replace=False):
        members, low, high = groups[k]
        w = rng.uniform(low, high)
        for name in members:
            weights[index[name]] = np.clip(w + rng.normal(0, 0.05), 0, 1)
    if rng.random() < 0.3:
        for name in _GAZE[rng.integers(len(_GAZE))]:
            if name in index:
                weights[index[name]] = rng.uniform(0.1, 0.6)
    return weights


def active_blendshapes(expression: np.ndarray) -> np.ndarray:
    """How many blendshapes an expression (..., 57) visibly uses (weight above 0.05)."""
    return np.count_nonzero(np.asarray(expression) > 0.05, axis=-1)


def sample_pose(rng: np.random.Generator, config: SamplerConfig) -> np.ndarray:
    deg = np.array(
        [
            truncated_normal(rng, config.yaw_std_deg, config.yaw_max_deg),
            truncated_normal(rng, config.pitch_std_deg, config.pitch_max_deg),
            truncated_normal(rng, config.roll_std_deg, config.roll_max_deg),
        ]
    )
    return np.radians(deg).astype(np.float32)


def colour_temperature_rgb(kelvin: float) -> np.ndarray:
    """Approximate white-balanced RGB of a black body (Tanner Helland's fit), max channel 1."""
    t = kelvin / 100.0
    r = 1.0 if t <= 66 else np.clip(329.698727446 * (t - 60) ** -0.1332047592 / 255, 0, 1)
    g = np.clip((99.4708025861 * np.log(t) - 161.1195681661) / 255 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492 / 255, 0, 1)
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else np.clip((138.5177312231 * np.log(t - 10) - 305.0447927307) / 255, 0, 1))
    rgb = np.array([r, g, b], dtype=np.float64)
    return rgb / rgb.max()


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """The 9 real SH basis functions at unit vectors (..., 3)."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    poly = np.stack([np.ones_like(x), y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], axis=-1)
    return poly * _SH_CONST


def lighting_sh(ambient: np.ndarray, direction: np.ndarray, directional: np.ndarray) -> np.ndarray:
    """SH irradiance coefficients (9, 3) for an ambient colour plus one directional light."""
    direction = direction / np.linalg.norm(direction)
    coeffs = np.zeros((NUM_SH, 3))
    coeffs[0] = ambient / _SH_CONST[0]
    coeffs += (_LAMBERT * sh_basis(direction))[:, None] * directional[None, :] * 1.5
    return coeffs.astype(np.float32)


def canonical_illumination() -> np.ndarray:
    return lighting_sh(np.full(3, 0.55), np.array([0.0, 0.3, 1.0]), np.full(3, 0.55))


def sample_illumination(rng: np.random.Generator) -> np.ndarray:
    """Ambient + one directional light in the front hemisphere, with a colour temperature."""
    tint = colour_temperature_rgb(rng.uniform(3200, 7500))
    ambient = rng.uniform(0.30, 0.65) * tint
    azimuth = rng.uniform(-np.pi * 0.45, np.pi * 0.45)
    elevation = rng.uniform(-0.3, 0.9)
    direction = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    directional = rng.uniform(0.2, 0.75) * tint
    return lighting_sh(ambient, direction, directional)


# SH coefficients that change sign when a scene is mirrored left-right (x -> -x): x, xy, xz.
MIRROR_SIGN = np.array([1, 1, 1, -1, -1, 1, 1, -1, 1], np.float32)


def mirror_light(light: np.ndarray) -> np.ndarray:
    """SH light (9, 3) of the left-right mirrored scene."""
    return (np.asarray(light, np.float32) * MIRROR_SIGN[:, None]).astype(np.float32)


def sample_photo_illumination(rng: np.random.Generator, lights: np.ndarray) -> np.ndarray:
    """One of the lights fitted to real photos (N, 9, 3), mirrored half the time."""
    light = np.asarray(lights[rng.integers(len(lights))], np.float32)
    return mirror_light(light) if rng.random() < 0.5 else light.copy()


def sample_attributes(
    rng: np.random.Generator, expression_names: list[str], config: SamplerConfig,
    photo_lights: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Expression, pose, illumination (canonical where not varied) and the other factors.
    ``photo_lights`` (N, 9, 3) are required by ``illumination_prior="photos"``."""
    n_exp = len(expression_names)
    # The draws' order (expression, pose, illumination, camera, background) fixes every
    # dataset's images: keep it.
    expression = (sample_expression(rng, expression_names, config.expression_rate)
                  if "expression" in config.vary else np.zeros(n_exp, np.float32))
    pose = sample_pose(rng, config) if "pose" in config.vary else np.zeros(3, np.float32)
    if "illumination" not in config.vary:
        illumination = canonical_illumination()
    elif config.illumination_prior == "photos":
        if photo_lights is None:
            raise ValueError("illumination_prior='photos' needs the photo lights (facemodel/scenes.py)")
        illumination = sample_photo_illumination(rng, photo_lights)
    else:
        illumination = sample_illumination(rng)
    return {
        "expression": expression,
        "pose": pose,
        "illumination": illumination,
        "camera_distance": np.float32(rng.uniform(*config.camera_distance_cm)),
        "background": rng.random(NUM_BACKGROUND).astype(np.float32),
    }
