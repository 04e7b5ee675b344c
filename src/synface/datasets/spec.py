"""Dataset specs: which identities, how many images each, which attributes vary, which mixup.

A spec is a YAML file under ``configs/datasets/`` (one per named dataset of the paper) read
into :class:`DatasetSpec`. :func:`resolve_spec` applies the command line's ``--scale``,
``--width`` and ``--depth`` and returns a spec whose numbers are final; :func:`plan_images`
turns it into one row per image. Image order is identity-major: identity 0's samples first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from synface.config import ADDED_OPTION, ConfigError, dump_yaml, from_dict, key_dict, load_yaml
from synface.errors import DataNotFoundError
from synface.facemodel.basis import BASIS_FITS, DEFAULT_BASIS_FIT
from synface.facemodel.hair import check_hairline
from synface.facemodel.latents import SamplerConfig
from synface.facemodel.learned import APPEARANCE_MODES, APPEARANCE_PRIORS, DEFAULT_APPEARANCE, DEFAULT_APPEARANCE_PRIOR
from synface.faces.align import RENDER_ALIGNMENTS
from synface.faces.templates import parse_size
from synface.generate.mixup import phi_grid
from synface.generate.photo_background import PHOTO_BACKGROUNDS
from synface.paths import config_dir
from synface.render.background import BACKGROUND_STYLES
from synface.seeding import namespace_id, sample_rng

CONFIG_DIR = config_dir("datasets")


@dataclass
class Group:
    """``identities`` people with ``samples`` images each (one group of paper Eq. 4)."""

    identities: int
    samples: int

    def __post_init__(self) -> None:
        if self.identities < 1 or self.samples < 1:
            raise ValueError(f"a group needs identities >= 1 and samples >= 1, got {self.identities} x {self.samples}")


@dataclass
class DatasetSpec:
    name: str
    # Balanced datasets give width x depth; long-tailed ones give groups instead.
    identities: int = 0
    samples: int = 0
    groups: list[Group] | None = None
    # Identity mixup's phi grid: none (phi = 1), syn2 (0.8), syn3 (linspace(0.6, 1, 11)),
    # full (linspace(0, 1, 21)), or a list of values.
    mixup: str | list[float] = "none"
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    appearance: str = DEFAULT_APPEARANCE  # procedural | learned | both (the generator's albedo model)
    # gaussian | blend2 | blend3: how a person's learned coefficients are drawn (facemodel/learned.py)
    appearance_prior: str = field(default=DEFAULT_APPEARANCE_PRIOR, metadata=ADDED_OPTION)
    # landmarks5 | landmarks68: what the learned basis unwrapped its photos onto (facemodel/basis.py)
    appearance_fit: str = field(default=DEFAULT_BASIS_FIT, metadata=ADDED_OPTION)
    background: str = field(default="procedural", metadata=ADDED_OPTION)  # procedural | natural | photos | photos_face
    alignment: str = field(default="exact", metadata=ADDED_OPTION)  # exact | mtcnn (faces/align.py)
    refiner: str = field(default="", metadata=ADDED_OPTION)  # weights of a realism refiner ("": none)
    hairline: str = field(default="low", metadata=ADDED_OPTION)  # low | high (facemodel/hair.py: HAIRLINE_STYLES)
    seed: int = 0
    namespace: str = "train"
    size: str = "112x96"
    shard_size: int = 1000
    scale: float = 1.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.groups is None and (self.identities < 1 or self.samples < 1):
            raise ValueError("give identities and samples (>= 1), or groups")
        if self.groups is not None and (self.identities or self.samples):
            raise ValueError("give either identities/samples or groups, not both")
        if self.shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        if self.scale <= 0:
            raise ValueError("scale must be > 0")
        parse_size(self.size)
        namespace_id(self.namespace)
        if self.appearance not in APPEARANCE_MODES:
            raise ValueError(f"unknown appearance {self.appearance!r}; choose from {', '.join(APPEARANCE_MODES)}")
        if self.appearance_prior not in APPEARANCE_PRIORS:
            raise ValueError(f"unknown appearance_prior {self.appearance_prior!r}; choose from {', '.join(APPEARANCE_PRIORS)}")
        if self.appearance == "procedural" and self.appearance_prior != DEFAULT_APPEARANCE_PRIOR:
            raise ValueError(f"appearance_prior {self.appearance_prior!r} needs a learned appearance, not 'procedural'")
        if self.appearance == "procedural" and self.sampler.photo_variation > 0:
            raise ValueError("sampler.photo_variation adds the learned basis's photo residuals; "
                             "appearance 'procedural' has none")
        if self.appearance_fit not in BASIS_FITS:
            raise ValueError(f"unknown appearance_fit {self.appearance_fit!r}; choose from {', '.join(BASIS_FITS)}")
        if self.background not in (*BACKGROUND_STYLES, *PHOTO_BACKGROUNDS):
            raise ValueError(f"unknown background {self.background!r}; choose from "
                             f"{', '.join((*BACKGROUND_STYLES, *PHOTO_BACKGROUNDS))}")
        check_hairline(self.hairline)
        if self.alignment not in RENDER_ALIGNMENTS:
            raise ValueError(f"unknown alignment {self.alignment!r}; choose from {', '.join(RENDER_ALIGNMENTS)}")
        grid = phi_grid(self.mixup)
        if np.any((grid < 0) | (grid > 1)):
            raise ValueError(f"mixup ratios must lie in [0, 1], got {[float(v) for v in grid]}")

    def to_yaml(self) -> str:
        """The spec as a dataset folder records it (spec.yaml); options added later are
        written only when set, so folders made before them still match."""
        return dump_yaml(key_dict(self))

    @property
    def group_list(self) -> list[Group]:
        return list(self.groups) if self.groups is not None else [Group(self.identities, self.samples)]

    @property
    def num_identities(self) -> int:
        return sum(g.identities for g in self.group_list)

    @property
    def num_images(self) -> int:
        return sum(g.identities * g.samples for g in self.group_list)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.num_images / self.shard_size)

    @property
    def uses_mixup(self) -> bool:
        return bool(np.any(phi_grid(self.mixup) != 1.0))


def spec_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def find_spec_file(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a spec under ``configs/datasets/``."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise DataNotFoundError(f"dataset spec not found: {path}")
        return path
    candidate = CONFIG_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    raise DataNotFoundError(f"unknown dataset spec {str(name_or_path)!r}; known: {', '.join(spec_names())}")


def load_spec(name_or_path: str | Path) -> DatasetSpec:
    path = find_spec_file(name_or_path)
    return from_dict(DatasetSpec, load_yaml(path), where=str(path))


def read_spec(root: str | Path) -> DatasetSpec | None:
    """The spec a dataset folder was generated from (its ``spec.yaml``), or None for a folder
    without one (imported real data). The one reader of ``spec.yaml``."""
    path = Path(root) / "spec.yaml"
    if not path.is_file():
        return None
    return from_dict(DatasetSpec, load_yaml(path), where=str(path))


def resolve_spec(
    spec: DatasetSpec, scale: float | None = None, width: int | None = None, depth: int | None = None
) -> DatasetSpec:
    """Final numbers: ``scale`` multiplies every identity count (at least 1 per group);
    ``width`` sets the total number of identities (groups keep their proportions);
    ``depth`` sets samples per identity (balanced specs only). The result has scale 1."""
    scale = spec.scale if scale is None else scale
    if scale <= 0:
        raise ConfigError(f"{spec.name}: scale must be > 0, got {scale}")
    groups = spec.group_list
    if depth is not None:
        if len(groups) != 1:
            raise ConfigError(f"{spec.name}: --depth applies to balanced specs; this one has {len(groups)} groups")
        groups = [Group(groups[0].identities, depth)]
    total = sum(g.identities for g in groups)
    target = width if width is not None else max(len(groups), round(total * scale))
    counts = _proportional_counts([g.identities for g in groups], target)
    groups = [Group(c, g.samples) for c, g in zip(counts, groups)]
    if len(groups) == 1:
        return replace(spec, identities=groups[0].identities, samples=groups[0].samples, groups=None, scale=1.0)
    return replace(spec, identities=0, samples=0, groups=groups, scale=1.0)


def _proportional_counts(counts: list[int], target: int) -> list[int]:
    """Split ``target`` in proportion to ``counts`` (largest remainder), at least 1 each."""
    if target < len(counts):
        raise ConfigError(f"need at least {len(counts)} identities (one per group), got {target}")
    total = sum(counts)
    exact = [c * target / total for c in counts]
    out = [max(1, int(math.floor(e))) for e in exact]
    order = sorted(range(len(counts)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    k = 0
    while sum(out) < target:
        out[order[k % len(order)]] += 1
        k += 1
    while sum(out) > target:
        i = max(range(len(out)), key=lambda j: out[j])
        out[i] -= 1
    return out


@dataclass
class ImagePlan:
    """One row per image of a resolved spec (identity-major order)."""

    label: np.ndarray  # (N,) class index = identity index in the spec's namespace
    sample: np.ndarray  # (N,) sample index within the identity
    secondary: np.ndarray  # (N,) mixup partner's class, -1 where phi = 1
    phi: np.ndarray  # (N,) float32 weight of the primary class

    def __len__(self) -> int:
        return len(self.label)

    def rows(self, start: int, stop: int) -> ImagePlan:
        return ImagePlan(self.label[start:stop], self.sample[start:stop], self.secondary[start:stop], self.phi[start:stop])


def plan_images(spec: DatasetSpec) -> ImagePlan:
    groups = spec.group_list
    firsts = np.cumsum([0] + [g.identities for g in groups])
    label = np.concatenate([np.repeat(np.arange(f, f + g.identities), g.samples) for f, g in zip(firsts, groups)])
    sample = np.concatenate([np.tile(np.arange(g.samples), g.identities) for g in groups])
    secondary = np.full(len(label), -1, np.int64)
    phi = np.ones(len(label), np.float32)
    grid = phi_grid(spec.mixup)
    if spec.uses_mixup:
        if spec.num_identities < 2:
            raise ConfigError(f"{spec.name}: identity mixup needs at least 2 identities")
        for i, (ident, s) in enumerate(zip(label, sample)):
            phi[i], secondary[i] = mixup_draw(spec.seed, int(ident), int(s), grid, spec.num_identities)
    return ImagePlan(label.astype(np.int64), sample.astype(np.int64), secondary, phi)


def mixup_draw(seed: int, identity: int, sample: int, grid: np.ndarray, num_identities: int) -> tuple[float, int]:
    """(phi, partner) of one image: phi from the grid, the partner another identity of the
    dataset; both from the image's own stream, so they never depend on the rest of the set."""
    rng = sample_rng(seed, "mixup_partner", identity, sample)
    phi = float(grid[rng.integers(len(grid))])
    partner = int(rng.integers(num_identities - 1))
    partner += partner >= identity
    return (1.0, -1) if phi == 1.0 else (phi, partner)
