"""A learned realism refiner for rendered crops (SimGAN, Shrivastava et al., CVPR 2017).

A small fully convolutional network adds a residual to each aligned render so that, patch by
patch, it looks like an aligned real photo (celeba-299) to a local discriminator, while a
self-regularisation term (L1 to the render) keeps what the render shows, and so who it is.
It sees only renders and celeba-299 crops: never LFW, never identity labels.

The generator applies it after rasterising (``GeneratorConfig.refiner``). Each image is refined
on its own, in float32, so its bytes still depend only on its own latents (no batch effects).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from synface.errors import DataNotFoundError, SynfaceError

FORMAT = "synface-refiner-1"


@dataclass
class RefinerConfig:
    channels: int = 16
    blocks: int = 3
    steps: int = 1000
    batch: int = 32
    lr: float = 2e-4
    # Weight of the self-regularisation, mean |refined - render| in 0..1 pixel units, against
    # the mean patch adversarial loss. Larger keeps renders closer to what they were.
    regularisation: float = 1.0
    # Refined images kept to show the discriminator (SimGAN's history buffer: it stops the
    # refiner and the discriminator chasing each other's latest step).
    history: int = 512
    synthetic_images: int = 4000
    seed: int = 0
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        for name in ("channels", "blocks", "steps", "batch", "history", "synthetic_images", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"refiner {name} must be >= 1, got {getattr(self, name)}")
        if self.regularisation < 0 or self.lr <= 0:
            raise ValueError("refiner regularisation must be >= 0 and lr > 0")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class RefinerNet(nn.Module):
    """Images (B, 3, H, W) in 0..1 -> refined images, same size. No normalisation layers: an
    image's output must not depend on the rest of its batch. The last layer starts at zero,
    so an untrained refiner is the identity."""

    def __init__(self, channels: int = 16, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.head = nn.Conv2d(channels, 3, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.head(self.blocks(F.relu(self.stem(x * 2 - 1))))
        return (x + residual).clamp(0, 1)


class PatchDiscriminator(nn.Module):
    """Real-vs-refined logits per local patch (receptive field ~19 px of a 112x96 crop): the
    refiner is judged on texture, light and noise, not on a face's overall look."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * channels, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x * 2 - 1)


# ---- applying ---------------------------------------------------------------------------------
# A spec's ``refiner: default`` names the refiner trained with the default settings into the
# cache (on first use, ~10 min on 2 cores), as the learned appearance basis is.
DEFAULT_REFINER = "default"


def default_refiner_path() -> Path:
    from synface.paths import cache_root

    return cache_root() / "refiner" / "celeba-299.pt"


def refiner_file(value: str | Path) -> Path:
    """The weights file a ``refiner`` setting names (``default``: the cached default one)."""
    return default_refiner_path() if str(value) == DEFAULT_REFINER else Path(value)


def refiner_fingerprint(value: str | Path) -> str:
    """A short hash of a refiner file's bytes (datasets record which refiner made them).
    Hashes only: a missing file is an error saying how to make it."""
    return hashlib.sha1(_existing(refiner_file(value)).read_bytes()).hexdigest()[:12]


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataNotFoundError(f"refiner weights not found: {path}; train them with "
                                f"`synface refiner train --out {path}`")
    return path


def ensure_refiner(path: str | Path | None = None) -> Path:
    """The refiner file to use: ``path`` as given (it must exist), or the default one, trained
    with the default settings against ``$SYNFACE_DATA/celeba-299`` when it is missing."""
    if path is not None:
        return _existing(Path(path))
    path = default_refiner_path()
    if not path.is_file():
        tqdm.write(f"training the default realism refiner into {path} (once; cached)")
        build_refiner(path)
    return path


def build_refiner(out: str | Path, config: RefinerConfig | None = None, generator=None,
                  real: str | Path | None = None, sheet: str | Path | None = None,
                  progress: bool = True) -> tuple[RefinerReport, Path]:
    """Render the training images of ``generator`` (a GeneratorConfig; default settings when
    None), align the photos of ``real``, train a refiner into ``out`` and draw its contact
    sheet (default: beside the weights). Returns the training report and the sheet's path."""
    from synface.generate.generator import GeneratorConfig

    out, config, generator = Path(out), config or RefinerConfig(), generator or GeneratorConfig()
    renders = render_training_images(generator, config.synthetic_images, progress=progress)
    photos = real_training_images(generator.size, real)
    report = train_refiner(renders, photos, out, config, progress=progress)
    sheet = write_refiner_sheet(load_refiner(out), renders, photos, sheet or out.with_suffix(".png"))
    return report, sheet


def load_refiner(value: str | Path) -> RefinerNet:
    """The trained refiner ``value`` names, in eval mode on the CPU."""
    path = _existing(refiner_file(value))
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != FORMAT:
            raise SynfaceError(f"{path} is not a synface refiner (format {saved.get('format')!r}, expected {FORMAT!r})")
        net = RefinerNet(saved["config"]["channels"], saved["config"]["blocks"])
        net.load_state_dict(saved["refiner"])
    except SynfaceError:
        raise
    except Exception as exc:  # a truncated or foreign file: name it
        raise SynfaceError(f"cannot read refiner weights {path}: {exc}") from None
    return net.eval()


@torch.inference_mode()
def refine_images(net: RefinerNet, images: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) renders -> refined uint8 images. One image per forward pass, so
    that an image's bytes never depend on which images share its batch."""
    out = np.empty_like(images)
    for b, image in enumerate(images):
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        y = net(x)[0].permute(1, 2, 0).mul(255.0).round().clamp(0, 255)
        out[b] = y.to(torch.uint8).numpy()
    return out


# ---- training data ----------------------------------------------------------------------------
def render_training_images(config, count: int, progress: bool = True) -> np.ndarray:
    """``count`` renders of the generator ``config`` (a GeneratorConfig without a refiner), two
    per person, from the ``refiner`` seed namespace: people no dataset trains on."""
    from dataclasses import replace

    from synface.generate.generator import FaceGenerator, image_keys

    generator = FaceGenerator(replace(config, refiner=None))
    identities = np.arange(count) // 2
    samples = np.arange(count) % 2
    chunks = []
    for start in tqdm(range(0, count, 64), desc="render for the refiner", unit="batch", disable=not progress):
        ids, smp = identities[start:start + 64].tolist(), samples[start:start + 64].tolist()
        chunks.append(generator.render(generator.latents(ids, smp, "refiner"), image_keys(ids, smp)))
    return np.concatenate(chunks)


def real_training_images(size: tuple[int, int], real: str | Path | None = None) -> np.ndarray:
    """The aligned crops of every photo of ``real`` (default ``$SYNFACE_DATA/celeba-299``: an
    identity folder with landmarks.txt), cached by ``aligned_crops``."""
    from synface.facemodel.basis_builder import list_real_images
    from synface.faces.pipeline import aligned_crops
    from synface.paths import data_path

    root = Path(real) if real is not None else data_path("celeba-299")
    table, landmark_file = list_real_images(root)
    crops, _ = aligned_crops(root, sorted(table), size, landmark_file, desc="align real photos", strict=False)
    return np.asarray(crops)


# ---- training ---------------------------------------------------------------------------------
@dataclass
class RefinerReport:
    path: str
    steps: int
    seconds: float
    synthetic_images: int
    real_images: int
    # Means over the last 10 % of steps.
    discriminator_loss: float
    adversarial_loss: float
    mean_change: float  # mean |refined - render| in 0..255 levels


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW


def _batch(pool: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` random images of ``pool`` as floats in 0..1, half of them mirrored."""
    picks = torch.randint(len(pool), (size,), generator=generator)
    x = pool[picks].float() / 255.0
    flip = torch.rand(size, generator=generator) < 0.5
    x[flip] = x[flip].flip(-1)
    return x


def train_refiner(
    synthetic: np.ndarray,
    real: np.ndarray,
    out: str | Path,
    config: RefinerConfig | None = None,
    progress: bool = True,
) -> RefinerReport:
    """Train a refiner from uint8 (N, H, W, 3) renders and real aligned crops of the same size
    and save it to ``out``. Resumable: a checkpoint (``out`` + ``.partial``) is written every
    ``checkpoint_every`` steps and picked up by the next call with the same settings."""
    config = config or RefinerConfig()
    out = Path(out)
    if synthetic.shape[1:] != real.shape[1:]:
        raise SynfaceError(f"renders {synthetic.shape[1:3]} and real crops {real.shape[1:3]} differ in size")
    torch.manual_seed(config.seed)
    refiner, critic = RefinerNet(config.channels, config.blocks), PatchDiscriminator()
    opt_r = torch.optim.Adam(refiner.parameters(), config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), config.lr, betas=(0.5, 0.999))
    generator = torch.Generator().manual_seed(config.seed)
    syn_pool, real_pool = _to_tensor(synthetic), _to_tensor(real)
    history = torch.empty((0, *syn_pool.shape[1:]), dtype=torch.uint8)
    log: list[tuple[float, float, float]] = []
    step, seconds = 0, 0.0

    partial = out.with_name(out.name + ".partial")
    if partial.is_file():
        state = torch.load(partial, map_location="cpu", weights_only=True)
        if state["config"] == asdict(config) and state["pool"] == (len(syn_pool), len(real_pool)):
            refiner.load_state_dict(state["refiner"])
            critic.load_state_dict(state["critic"])
            opt_r.load_state_dict(state["opt_r"])
            opt_d.load_state_dict(state["opt_d"])
            generator.set_state(state["generator"])
            history, log, step, seconds = state["history"], state["log"], state["step"], state["seconds"]
            tqdm.write(f"resuming refiner training at step {step} of {config.steps} from {partial}")

    half = config.batch // 2 or 1
    bar = tqdm(total=config.steps, initial=step, desc="train refiner", unit="step", disable=not progress)
    start = time.perf_counter() - seconds
    while step < config.steps:
        renders = _batch(syn_pool, config.batch, generator)
        photos = _batch(real_pool, config.batch, generator)
        refined = refiner(renders)

        # The discriminator sees half fresh refinements, half from the history buffer.
        fakes = refined.detach()
        if len(history) >= half:
            old = history[torch.randint(len(history), (half,), generator=generator)].float() / 255.0
            fakes = torch.cat([fakes[:half], old])
        d_real, d_fake = critic(photos), critic(fakes)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        judged = critic(refined)
        adversarial = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
        change = (refined - renders).abs().mean()
        opt_r.zero_grad(set_to_none=True)
        (adversarial + config.regularisation * change).backward()
        opt_r.step()

        history = _remember(history, refined.detach()[half:], config.history, generator)
        step += 1
        log.append((loss_d.item(), adversarial.item(), change.item() * 255.0))
        bar.update(1)
        bar.set_postfix(d=f"{log[-1][0]:.3f}", adv=f"{log[-1][1]:.3f}", change=f"{log[-1][2]:.1f}")
        if step % config.checkpoint_every == 0 and step < config.steps:
            _save(partial, {
                "config": asdict(config), "pool": (len(syn_pool), len(real_pool)), "refiner": refiner.state_dict(),
                "critic": critic.state_dict(), "opt_r": opt_r.state_dict(), "opt_d": opt_d.state_dict(),
                "generator": generator.get_state(), "history": history, "log": log, "step": step,
                "seconds": time.perf_counter() - start,
            })
    bar.close()
    seconds = time.perf_counter() - start
    tail = np.array(log[-max(1, len(log) // 10):])
    report = RefinerReport(str(out), step, round(seconds, 1), len(syn_pool), len(real_pool),
                           *(round(float(v), 4) for v in tail.mean(0)))
    _save(out, {"format": FORMAT, "config": asdict(config), "refiner": refiner.state_dict(), "report": asdict(report)})
    partial.unlink(missing_ok=True)
    return report


def _remember(history: torch.Tensor, refined: torch.Tensor, capacity: int, generator: torch.Generator) -> torch.Tensor:
    """The history buffer with ``refined`` (floats) added, random old entries replaced once full."""
    images = refined.mul(255.0).round().to(torch.uint8)
    room = capacity - len(history)
    if room > 0:
        history = torch.cat([history, images[:room]])
        images = images[room:]
    if len(images):
        history[torch.randperm(len(history), generator=generator)[: len(images)]] = images
    return history


def _save(path: Path, state: dict) -> None:
    from synface.paths import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_file(path) as fh:
        fh.write(buffer.getvalue())


def write_refiner_sheet(net: RefinerNet, synthetic: np.ndarray, real: np.ndarray, path: str | Path,
                        count: int = 8) -> Path:
    """A contact sheet: renders, the same renders refined, and real crops (first ``count``)."""
    from synface.imageio import write_contact_sheet

    renders = np.asarray(synthetic[:count])
    return write_contact_sheet([("renders", renders), ("refined", refine_images(net, renders)),
                                ("real photos (celeba-299)", np.asarray(real[:count]))], path)
