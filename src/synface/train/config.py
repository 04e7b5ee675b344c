"""Training configs: one dataclass tree, filled from ``configs/train/<preset>.yaml``.

``paper``: the paper's recipe (LResNet50E-IR at 112x96, ArcFace m = 0.5, s = 30, SGD 0.1
stepped /10 at epochs 24/30/36 of 40, batch 512). ``cpu``: a recipe sized by measurement
for 2 CPU cores (see configs/train/cpu.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from synface.config import ADDED_OPTION, ConfigError, from_dict, load_yaml
from synface.errors import DataNotFoundError
from synface.models.heads import MarginConfig
from synface.models.mixstyle import MixStyleConfig
from synface.paths import config_dir
from synface.runtime import check_setting, parse_precision

CONFIG_DIR = config_dir("train")


@dataclass
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # Fractions allowed: an equal-compute study trains every run the same number of steps
    # whatever its dataset size (experiments/reproduce).
    epochs: int | float = 40
    milestones: tuple[float, ...] = (24, 30, 36)  # epochs (fractions allowed) where lr /= 10
    warmup_epochs: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.epochs <= 0:
            raise ValueError(f"optim: lr must be > 0 and epochs > 0, got lr {self.lr}, epochs {self.epochs}")
        if not 0.0 <= self.momentum < 1.0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("optim: momentum must lie in [0, 1), weight_decay and warmup_epochs >= 0")
        if list(self.milestones) != sorted(self.milestones) or any(m <= 0 for m in self.milestones):
            raise ValueError(f"optim.milestones must be positive and ascending, got {list(self.milestones)}")


@dataclass
class AugmentConfig:
    """Batch augmentation on the device (kornia); probabilities per image, 0 = off.

    The families after ``grayscale`` model how photos differ from renders (issue 18): a
    detector's alignment error (``affine``), camera response and white balance (``gamma``,
    ``white_balance``), lost resolution (``downscale``, ``gaussian_blur``), compression
    (``jpeg``), sensor noise (``noise``) and occlusion (``erasing``)."""

    flip: float = 0.5
    color_jitter: float = 0.0
    jitter_strength: float = 0.3  # brightness / contrast / saturation range
    motion_blur: float = 0.0  # the paper's appendix: +2.25 points
    blur_kernel: tuple[int, int] = (3, 7)  # odd kernel sizes, in pixels of the network input
    grayscale: float = 0.0
    affine: float = 0.0  # small random similarity, like a detector's landmark error
    affine_degrees: float = 8.0
    affine_shift: float = 0.05  # fraction of the crop size
    affine_scale: tuple[float, float] = (0.9, 1.1)
    gamma: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.4)
    white_balance: float = 0.0  # black-body (Planckian) colour casts
    downscale: float = 0.0  # down- then up-sampling by a random factor
    downscale_range: tuple[float, float] = (0.35, 0.9)
    gaussian_blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.2, 1.2)  # in pixels of the network input
    jpeg: float = 0.0
    jpeg_quality: tuple[float, float] = (30.0, 95.0)
    noise: float = 0.0
    noise_std: float = 0.03  # of the [0, 1] range
    erasing: float = 0.0
    erasing_scale: tuple[float, float] = (0.02, 0.15)  # fraction of the image area
    random_conv: float = field(default=0.0, metadata=ADDED_OPTION)  # random texture / colour filters (RandConv)
    # odd sizes, in pixels of the network input
    random_conv_kernels: tuple[int, ...] = field(default=(1, 3, 5, 7), metadata=ADDED_OPTION)
    # unsharp masking: renders have less local contrast inside the face than photos
    detail_boost: float = field(default=0.0, metadata=ADDED_OPTION)
    detail_sigma: tuple[float, float] = field(default=(0.7, 2.0), metadata=ADDED_OPTION)  # px of the network input
    detail_amount: tuple[float, float] = field(default=(0.3, 0.8), metadata=ADDED_OPTION)
    # colour moved towards grey: renders are more saturated inside the face than photos
    desaturate: float = field(default=0.0, metadata=ADDED_OPTION)
    desaturate_factor: tuple[float, float] = field(default=(0.7, 0.95), metadata=ADDED_OPTION)  # of the saturation
    # everything but the inner face (brows to chin) painted one flat colour
    inner_face_only: float = field(default=0.0, metadata=ADDED_OPTION)

    def __post_init__(self) -> None:
        for name in ("flip", "color_jitter", "motion_blur", "grayscale", "affine", "gamma", "white_balance",
                     "downscale", "gaussian_blur", "jpeg", "noise", "erasing", "random_conv", "inner_face_only",
                     "detail_boost", "desaturate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} is a probability in [0, 1], got {value}")
        for name in ("affine_scale", "gamma_range", "downscale_range", "blur_sigma", "jpeg_quality", "erasing_scale",
                     "detail_sigma", "detail_amount", "desaturate_factor"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"augment.{name} must be (low, high) with 0 < low <= high, got {[low, high]}")
        if self.desaturate_factor[1] > 1.0:
            raise ValueError(f"augment.desaturate_factor scales the saturation down: at most 1, got "
                             f"{list(self.desaturate_factor)}")
        if not 0.0 < self.downscale_range[1] <= 1.0 or self.jpeg_quality[1] > 100 or self.erasing_scale[1] >= 1.0:
            raise ValueError("augment: downscale_range within (0, 1], jpeg_quality within (0, 100], "
                             "erasing_scale below 1")
        if not self.random_conv_kernels or any(k < 1 or k % 2 == 0 for k in self.random_conv_kernels):
            raise ValueError(f"augment.random_conv_kernels must be odd sizes >= 1, got {list(self.random_conv_kernels)}")


@dataclass
class ValidationConfig:
    """Held-out synthetic identities (seed namespace ``validation``); never LFW."""

    identities: int = 100
    samples: int = 4
    every_epochs: int = 1

    def __post_init__(self) -> None:
        if self.identities < 0 or self.samples < 1 or self.every_epochs < 1:
            raise ValueError("validation: identities >= 0 (0 = off), samples >= 1 and every_epochs >= 1")


@dataclass
class TrainConfig:
    backbone: str = "lresnet50e_ir"
    input_size: str = "112x96"
    embedding_size: int = 512
    batch_size: int = 512  # global, over all processes
    micro_batches: int = 1  # split each process's share (gradient accumulation)
    head: MarginConfig = field(default_factory=MarginConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mixstyle: MixStyleConfig = field(default_factory=MixStyleConfig, metadata=ADDED_OPTION)
    domain_mixup: str | list[float] = "full"  # psi grid when --real is given: linspace(0, 1, 21)
    # Runtime settings (synface.runtime): ``auto`` is resolved for the machine when the run
    # starts (precision from its bf16 support, compile from its ISA and the run's length);
    # an explicit value wins. amp: auto | true | false | fp32 | bf16 | fp16.
    amp: bool | str = "auto"
    compile: bool | str = "auto"
    compile_mode: str = "auto"  # torch.compile mode; auto: max-autotune-no-cudagraphs on CPU
    channels_last: bool | str = "auto"
    threads: int | str = "auto"  # torch intra-op threads; auto: the cores this process may use
    seed: int = 0
    workers: int = 2  # DataLoader processes per training process
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    time_budget_min: float | None = None  # stop (and checkpoint) after this many minutes
    # With a time budget: measure the step rate over the first steps and shorten the run
    # (its lr schedule compressed alike) so that every remaining step fits the budget.
    fit_to_budget: bool = False
    log_every: int = 10

    def __post_init__(self) -> None:
        from synface.faces.templates import parse_size
        from synface.generate.mixup import phi_grid
        from synface.models.backbones import BACKBONES

        if self.batch_size < 1 or self.micro_batches < 1:
            raise ValueError("batch_size and micro_batches must be >= 1")
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(sorted(BACKBONES))}")
        parse_size(self.input_size)
        if self.embedding_size < 1 or self.workers < 0 or self.log_every < 1:
            raise ValueError("embedding_size and log_every must be >= 1, workers >= 0")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ValueError(f"time_budget_min must be > 0 (or null), got {self.time_budget_min}")
        grid = phi_grid(self.domain_mixup)
        if any(not 0.0 <= float(v) <= 1.0 for v in grid):
            raise ValueError(f"domain_mixup ratios must lie in [0, 1], got {[float(v) for v in grid]}")
        self.head.margins()  # validates the loss name
        parse_precision(self.amp)
        check_setting("compile", self.compile)
        check_setting("channels_last", self.channels_last)
        if isinstance(self.threads, str):
            check_setting("threads", self.threads)
        elif self.threads < 1:
            raise ValueError(f"threads must be >= 1 or auto, got {self.threads}")


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_train_config(name_or_path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """A preset name (``paper``, ``cpu``) or a YAML path; ``overrides`` are dotted keys."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise DataNotFoundError(f"unknown training preset {str(name_or_path)!r}; known: {', '.join(preset_names())}")
    data = load_yaml(path)
    for key, value in (overrides or {}).items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {part} is not a section")
        node[parts[-1]] = value
    return from_dict(TrainConfig, data, where=str(path))
