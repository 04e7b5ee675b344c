"""The paper's studies as configs: ``configs/reproduce/<study>.yaml`` read into :class:`Study`
and expanded, at a scale, into concrete runs.

A study names its runs with the paper's labels (``10K_5``, ``Mix_1K_10``): a dataset spec
of the paper's size (``spec``), a real identity folder (``real``, its first
``real_identities`` people with ``real_samples`` photos each), or both mixed by domain
mixup (``mix``). A scale shrinks every size by its factors (``width`` on identities,
``depth`` on images per identity; ``real_width`` / ``real_depth`` for the real people)
and fixes the training budget: ``steps`` trains every run of the study the same number of
steps whatever its dataset size (equal compute); without it, the preset's epochs (the
paper's protocol). Claims compare runs pairwise: ``[better, worse, benchmark]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from synface.config import ConfigError, from_dict, load_yaml
from synface.datasets.spec import DatasetSpec, Group, load_spec
from synface.errors import DataNotFoundError
from synface.paths import config_dir

STUDY_DIR = config_dir("reproduce")
SCALES = ("smoke", "cpu", "paper")
# Per scale: the training preset, seeds, and what every run of that scale shares. Smoke runs
# exist to exercise the code (the test suite runs every study): fp32 eager (nothing to time
# or compile), tiny batches, no synthetic validation, a 5 + 5 pairs-per-fold slice of each
# benchmark.
SCALE_BASE = {
    "smoke": {"preset": "cpu", "seeds": 1, "pairs_per_fold": 5,
              "train": {"batch_size": 8, "amp": False, "compile": False, "workers": 0, "validation.identities": 0,
                        "log_every": 1}},
    "cpu": {"preset": "cpu", "seeds": 2, "pairs_per_fold": None, "train": {}},
    "paper": {"preset": "paper", "seeds": 1, "pairs_per_fold": None, "train": {}},
}
MIN_IDENTITIES = 4  # a scaled set keeps at least this many people (verification needs several)
BENCHMARK_NAMES = ("lfw", "syn-lfw")  # and syn-lfw-R for a mixup attack at ratio R
MEASURES = ("intra_spread",)  # per-run figures that are not a benchmark (the identity-mixup MDS)


@dataclass
class RunDef:
    name: str
    spec: str | None = None  # a dataset spec of the paper's size (configs/datasets)
    real: str | None = None  # a real identity folder under $SYNFACE_DATA
    real_identities: int | None = None  # the paper's N (scaled like identities); None: all
    real_samples: int | None = None  # the paper's S (scaled like samples); None: all
    mix: bool = False  # spec's synthetic data with the real people mixed in (domain mixup)
    train: dict = field(default_factory=dict)  # dotted overrides of the scale's preset
    paper: dict = field(default_factory=dict)  # benchmark -> the paper's accuracy (%)
    about: str = ""

    def __post_init__(self) -> None:
        if self.spec is None and self.real is None:
            raise ValueError(f"run {self.name}: give a spec, a real folder, or both with mix: true")
        if self.spec is not None and self.real is not None and not self.mix:
            raise ValueError(f"run {self.name}: a spec and a real folder together need mix: true")
        if self.mix and (self.spec is None or self.real is None):
            raise ValueError(f"run {self.name}: mix needs both a spec and a real folder")

    @property
    def kind(self) -> str:
        return "mix" if self.mix else "synthetic" if self.spec else "real"


@dataclass
class ScaleDef:
    width: float = 1.0
    depth: float = 1.0
    real_width: float | None = None  # default: width
    real_depth: float | None = None  # default: depth
    steps: int | None = None  # every run trains this many steps; None: the preset's epochs
    train: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("width", "depth", "real_width", "real_depth"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


@dataclass
class Claim:
    id: str
    text: str
    pairs: list[list[str]]  # [better, worse] or [better, worse, benchmark-or-measure]
    paper: str = ""


@dataclass
class Study:
    name: str
    paper: str
    title: str
    runs: list[RunDef]
    scales: dict[str, ScaleDef]
    claims: list[Claim] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=lambda: ["lfw"])
    plot: str = "bars"  # bars | mds | attack | heatmap

    def run(self, name: str) -> RunDef:
        for run in self.runs:
            if run.name == name:
                return run
        raise ConfigError(f"study {self.name}: no run named {name!r}")


def study_files() -> dict[str, Path]:
    """Study name -> its YAML file."""
    return {load_yaml(p)["name"]: p for p in sorted(STUDY_DIR.glob("*.yaml"))}


def study_names() -> list[str]:
    return list(study_files())


def load_study(name_or_path: str | Path) -> Study:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        files = study_files()
        if str(name_or_path) not in files:
            raise DataNotFoundError(f"unknown study {str(name_or_path)!r}; known: {', '.join(files)}")
        path = files[str(name_or_path)]
    study = from_dict(Study, load_yaml(path), str(path))
    check_study(study, str(path))
    return study


def check_study(study: Study, where: str) -> None:
    """Names that only fail when a long reproduction reaches them, refused up front."""
    names = [r.name for r in study.runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: run names repeat: {names}")
    for scale in study.scales:
        if scale not in SCALES:
            raise ConfigError(f"{where}: unknown scale {scale!r}; known: {', '.join(SCALES)}")
    for benchmark in study.benchmarks:
        parse_benchmark(benchmark, where)
    for run in study.runs:
        if run.spec is not None:
            try:
                load_spec(run.spec)
            except DataNotFoundError as exc:
                raise ConfigError(f"{where}: run {run.name}: {exc}") from None
        for benchmark in run.paper:
            parse_benchmark(benchmark, f"{where}: run {run.name}.paper")
    if study.plot not in ("bars", "mds", "attack", "heatmap"):
        raise ConfigError(f"{where}: unknown plot {study.plot!r}; known: bars, mds, attack, heatmap")
    for claim in study.claims:
        for pair in claim.pairs:
            if len(pair) not in (2, 3):
                raise ConfigError(f"{where}: claim {claim.id}: a pair is [better, worse] or [better, worse, benchmark]")
            for run in pair[:2]:
                if run not in names:
                    raise ConfigError(f"{where}: claim {claim.id} names run {run!r}, which the study lacks")
            measure = pair[2] if len(pair) == 3 else study.benchmarks[0]
            if measure not in MEASURES and measure not in study.benchmarks:
                raise ConfigError(f"{where}: claim {claim.id} compares on {measure!r}, which the study does not "
                                  f"score (benchmarks: {', '.join(study.benchmarks)})")


def parse_benchmark(name: str, where: str = "study") -> float | None:
    """``lfw`` / ``syn-lfw`` -> None; ``syn-lfw-R`` -> the attack ratio R."""
    if name in BENCHMARK_NAMES:
        return None
    prefix = "syn-lfw-"
    if name.startswith(prefix):
        try:
            ratio = float(name[len(prefix):])
        except ValueError:
            ratio = -1.0
        if 0.0 <= ratio <= 1.0:
            return ratio
    raise ConfigError(f"{where}: unknown benchmark {name!r}; known: lfw, syn-lfw, syn-lfw-R (R in [0, 1])")


@dataclass
class PlannedRun:
    """One run of a study at a scale, sizes final (seeds are applied by the runner)."""

    study: str
    name: str
    kind: str  # synthetic | real | mix
    spec: DatasetSpec | None
    real: str | None
    real_identities: int | None
    real_samples: int | None
    preset: str
    train: dict  # dotted overrides, the scale's and the run's; epochs set where steps are fixed
    steps: int | None
    benchmarks: list[str]


def scale_count(value: int, factor: float, minimum: int = 1) -> int:
    return max(minimum, int(math.floor(value * factor + 0.5)))


def scaled_spec(spec: DatasetSpec, scale: ScaleDef) -> DatasetSpec:
    """``spec`` with every group's identities x ``width`` (at least ``MIN_IDENTITIES`` in all
    and one per group) and samples x ``depth`` (at least 1)."""
    groups = spec.group_list
    total = sum(g.identities for g in groups)
    target = max(MIN_IDENTITIES, len(groups), scale_count(total, scale.width))
    counts = [max(1, scale_count(g.identities, target / total)) for g in groups]
    while sum(counts) > target and max(counts) > 1:
        counts[counts.index(max(counts))] -= 1
    while sum(counts) < target:
        counts[counts.index(min(counts))] += 1
    scaled = [Group(c, scale_count(g.samples, scale.depth)) for c, g in zip(counts, groups)]
    if len(scaled) == 1:
        return replace(spec, identities=scaled[0].identities, samples=scaled[0].samples, groups=None, scale=1.0)
    return replace(spec, identities=0, samples=0, groups=scaled, scale=1.0)


def plan_study(study: Study, scale_name: str) -> list[PlannedRun]:
    if scale_name not in SCALES:
        raise ConfigError(f"unknown scale {scale_name!r}; known: {', '.join(SCALES)}")
    if scale_name not in study.scales:
        raise ConfigError(f"study {study.name} has no {scale_name!r} scale; it has {', '.join(study.scales)}")
    scale = study.scales[scale_name]
    base = SCALE_BASE[scale_name]
    real_width = scale.width if scale.real_width is None else scale.real_width
    real_depth = scale.depth if scale.real_depth is None else scale.real_depth
    planned = []
    for run in study.runs:
        spec = scaled_spec(load_spec(run.spec), scale) if run.spec else None
        identities = samples = None
        if run.real is not None:
            if run.real_identities is not None:
                identities = scale_count(run.real_identities, real_width, MIN_IDENTITIES)
            if run.real_samples is not None:
                samples = scale_count(run.real_samples, real_depth, 2)
        train = {**base["train"], **scale.train, **run.train}
        planned.append(PlannedRun(study.name, run.name, run.kind, spec, run.real, identities, samples,
                                  base["preset"], train, scale.steps, list(study.benchmarks)))
    return planned


def steps_to_epochs(steps: int, images: int, batch_size: int, milestones: tuple[float, ...], epochs: float,
                    warmup: float) -> dict:
    """Overrides that train exactly ``steps`` steps on ``images`` images with the preset's
    schedule shape: milestones and warm-up keep their fraction of the run."""
    per_epoch = images // batch_size
    if per_epoch < 1:
        raise ConfigError(f"{images} images do not fill one batch of {batch_size}")
    new_epochs = steps / per_epoch
    factor = new_epochs / epochs
    return {"optim.epochs": new_epochs, "optim.milestones": [m * factor for m in milestones],
            "optim.warmup_epochs": warmup * factor}
