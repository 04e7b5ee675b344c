"""The training loop: margin softmax with identity-mixup soft labels and domain mixup.

Every random choice is a function of (seed, step, chunk): the data order of an epoch, the
real-data stream, each global batch's domain-mixup ratio ψ, each chunk's augmentation and MixStyle draws.
So a run resumed from a checkpoint continues exactly, and P processes × M micro-batches
see the same chunks as one process with P·M micro-batches (what the DDP test checks).

Domain mixup (paper Eq. 3): x = ψ·x_syn + (1 − ψ)·x_real, loss = ψ·L_syn + (1 − ψ)·L_real,
with one classifier whose rows are the synthetic classes followed by the real ones. Each
domain's loss is a softmax over its own rows, so ψ = 1 is exactly synthetic-only training
and ψ = 0 exactly real-only training.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from synface.config import ConfigError, dump_yaml, from_dict, to_dict
from synface.datasets.build import VALIDATION_SPLIT
from synface.datasets.storage import ShardedDataset, SoftLabels, collate_batch
from synface.errors import DataNotFoundError, SynfaceError, cannot_write
from synface.locks import folder_lock
from synface.faces.templates import parse_size
from synface.generate.mixup import phi_grid
from synface.models.backbones import get_backbone
from synface.models.checkpoint import backbone_spec
from synface.models.heads import MarginHead, soft_margin_loss
from synface.models.mixstyle import attach_mixstyle
from synface.runtime import RuntimePlan, plan_runtime, precision_dtype, resolve_device, time_steps
from synface.train.augment import augment, build_augmentation
from synface.train.config import TrainConfig
from synface.train.distributed import any_over_ranks, barrier, init_distributed, mean_over_ranks, min_over_ranks, shutdown
from synface.models.inference import fit_input
from synface.train.validation import validate

CHECKPOINT = "checkpoint.pt"
# What --resume may change: the length and schedule of the run and how it is watched, never
# what a step computes.
COMPILE_MIN_IMAGES = 100 * 256
RESUMABLE_CHANGES = {"optim.epochs", "optim.milestones", "time_budget_min", "fit_to_budget", "workers", "log_every",
                     "validation.every_epochs", "threads"}
# Steps timed before a time-budgeted run sizes itself to the machine (after the first
# step, which includes compilation and the loaders' start).
FIT_AFTER_STEPS = 8
FIT_AFTER_BUDGET_FRACTION = 0.05  # ... or after 3 once 5 % of the budget is gone (slow machines)


def stream_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@functools.lru_cache(maxsize=4)
def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of one epoch (cached, read-only: every step of the epoch reads it)."""
    order = np.random.default_rng(stream_seed(seed, 1, epoch)).permutation(n)
    order.setflags(write=False)
    return order


@functools.lru_cache(maxsize=4)
def _cycle_order(n: int, seed: int, cycle: int) -> np.ndarray:
    order = np.random.default_rng(stream_seed(seed, 2, cycle)).permutation(n)
    order.setflags(write=False)
    return order


def stream_indices(n: int, seed: int, start: int, count: int) -> np.ndarray:
    """Positions [start, start + count) of an endless stream of shuffled passes over n items
    (the cycling real-data loader)."""
    out = np.empty(count, np.int64)
    done = 0
    while done < count:
        position = start + done
        cycle, offset = divmod(position, n)
        take = min(n - offset, count - done)
        out[done : done + take] = _cycle_order(n, seed, cycle)[offset : offset + take]
        done += take
    return out


class StepBatches(torch.utils.data.Sampler):
    """Index lists for this process's micro-batches, step after step from ``start_step``."""

    def __init__(self, index_fn, steps: range, per_process: int, micro: int, rank: int) -> None:
        self.index_fn, self.steps, self.micro, self.rank = index_fn, steps, micro, rank
        self.per_process = per_process

    def __iter__(self):
        chunk = self.per_process // self.micro
        for step in self.steps:
            mine = self.index_fn(step)[self.rank * self.per_process : (self.rank + 1) * self.per_process]
            for m in range(self.micro):
                yield mine[m * chunk : (m + 1) * chunk].tolist()

    def __len__(self) -> int:
        return len(self.steps) * self.micro


class TrainingModule(nn.Module):
    """Backbone + margin head; forward returns the loss so DDP sees every parameter used."""

    def __init__(self, backbone: nn.Module, head: MarginHead, syn_classes: int, real_classes: int) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.syn_classes, self.real_classes = syn_classes, real_classes

    def forward(self, x: torch.Tensor, syn: SoftLabels, real: SoftLabels | None, psi: float) -> torch.Tensor:
        emb = self.backbone(x)
        if real is None:
            return soft_margin_loss(self.head, emb, syn.label, syn.secondary, syn.phi)
        syn_loss = soft_margin_loss(self.head, emb, syn.label, syn.secondary, syn.phi, slice(0, self.syn_classes))
        real_loss = soft_margin_loss(self.head, emb, real.label, real.secondary, real.phi, slice(self.syn_classes, None))
        return psi * syn_loss + (1.0 - psi) * real_loss


def _config_changes(a: dict, b: dict, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two config dicts."""
    out = set()
    for key in set(a) | set(b):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= _config_changes(x, y, f"{prefix}{key}.")
        elif x != y:
            out.add(prefix + key)
    return out


def lr_factor(epoch: float, milestones: tuple[float, ...], warmup: float) -> float:
    factor = 0.1 ** sum(epoch >= m for m in milestones)
    if warmup > 0 and epoch < warmup:
        factor *= (epoch + 1e-3) / warmup
    return factor


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        data: str | Path,
        out: str | Path,
        real: str | Path | None = None,
        device: str = "auto",
        progress: bool = True,
        validation: str | Path | None = None,
    ) -> None:
        """``validation``: the held-out synthetic split to validate on (a dataset folder);
        default ``data/validation``, which ``synface generate`` writes."""
        self.config = config
        self.out = Path(out)
        self.device = resolve_device(device)
        self.dist = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.world > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.progress = progress and self.dist.is_main
        self.syn = ShardedDataset(data)
        self.validation_root = Path(validation) if validation is not None else Path(data) / VALIDATION_SPLIT
        self.real = ShardedDataset(real) if real is not None else None
        self._check_datasets(Path(data), Path(real) if real is not None else None)
        self.input_size = parse_size(config.input_size)
        chunks = self.dist.world * config.micro_batches
        if config.batch_size % chunks:
            raise ConfigError(f"batch_size {config.batch_size} must divide into {self.dist.world} processes x "
                              f"{config.micro_batches} micro-batches")
        self.per_process = config.batch_size // self.dist.world
        self.steps_per_epoch = len(self.syn) // config.batch_size
        if self.steps_per_epoch < 1:
            raise SynfaceError(f"{data}: {len(self.syn)} images is less than one batch of {config.batch_size}")
        self.total_steps = max(1, round(self.steps_per_epoch * config.optim.epochs))
        self.planned_steps = self.total_steps  # the config's plan; total_steps may be fitted to a budget
        self.psi_grid = phi_grid(config.domain_mixup)
        self.runtime = self._plan_runtime()
        self._build_model()
        self.step = 0
        self.fit: dict | None = None
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self._tensorboard = None  # SummaryWriter once used; False when tensorboard is absent

    # ---- setup -------------------------------------------------------------------------------
    def _check_datasets(self, data: Path, real: Path | None) -> None:
        if self.real is None:
            return
        if data.resolve() == real.resolve():
            raise SynfaceError(f"--data and --real are the same dataset ({data}): its classes would clash")
        if self.syn.image_size != self.real.image_size:
            raise SynfaceError(f"image sizes differ: {data} is {self.syn.image_size}, {real} is {self.real.image_size}")
        if self.real.info["kind"] != "real":
            raise SynfaceError(f"--real {real} holds {self.real.info['kind']} data; import real faces with "
                               "`synface import-real`")
        syn_classes = set(self.syn.info.get("classes") or [])
        clash = syn_classes & set(self.real.info.get("classes") or [])
        if clash:
            raise SynfaceError(f"classes clash between {data} and {real}: {sorted(clash)[:5]} appear in both")

    def _plan_runtime(self) -> RuntimePlan:
        """Resolve precision / compile / layout / threads for this machine (synface.runtime).
        Compiling repays itself only over a long run: ~30-90 s once, against ~1 s per 256
        images, so the run's length is counted in images (100 batches of 256), not steps."""
        c = self.config
        # Timings differ between processes, so under torchrun no probe may decide (fp32 then).
        probe = self._time_precision if self.dist.world == 1 else None
        return plan_runtime(self.device, c.amp, c.compile, c.channels_last, c.threads, c.compile_mode,
                            long_run=self.total_steps * c.batch_size >= COMPILE_MIN_IMAGES, probe=probe)

    def _time_precision(self, precision: str) -> float:
        """Seconds per forward + backward of a copy of the model on a random batch (the
        runtime's probe where capability checks cannot choose); touches no training state."""
        import copy

        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            backbone = get_backbone(c.backbone, self.input_size, c.embedding_size).to(self.device)
            backbone = backbone.to(memory_format=torch.channels_last)
            head = MarginHead(c.embedding_size, max(self.syn.num_classes, 2), copy.deepcopy(c.head)).to(self.device)
            batch = min(c.batch_size, 64)
            x = torch.randn(batch, 3, *self.input_size, device=self.device).contiguous(memory_format=torch.channels_last)
            labels = torch.randint(0, head.num_classes, (batch,), device=self.device)
            def step() -> None:
                with torch.autocast(self.device.type, dtype=precision_dtype(precision), enabled=precision != "fp32"):
                    loss = nn.functional.cross_entropy(head(backbone(x), labels), labels)
                loss.backward()

            return time_steps(step, 2)

    def _build_model(self) -> None:
        c, plan = self.config, self.runtime
        torch.manual_seed(c.seed)
        backbone = get_backbone(c.backbone, self.input_size, c.embedding_size)
        try:
            attach_mixstyle(backbone, c.mixstyle)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        syn_classes = self.syn.num_classes
        real_classes = self.real.num_classes if self.real is not None else 0
        head = MarginHead(c.embedding_size, syn_classes + real_classes, c.head)
        with torch.no_grad():  # synthetic rows first, from their own stream, as in synthetic-only runs
            head.weight[:syn_classes].normal_(0.0, 0.01, generator=torch.Generator().manual_seed(stream_seed(c.seed, 3)))
            if real_classes:
                head.weight[syn_classes:].normal_(0.0, 0.01, generator=torch.Generator().manual_seed(stream_seed(c.seed, 4)))
        module = TrainingModule(backbone, head, syn_classes, real_classes).to(self.device)
        if plan.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        self.optimizer = torch.optim.SGD(module.parameters(), lr=c.optim.lr, momentum=c.optim.momentum,
                                         weight_decay=c.optim.weight_decay)
        self.ddp = None
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        runner = self.ddp or module
        self.forward = torch.compile(runner, mode=plan.compile_mode) if plan.compile else runner
        # fp16 needs loss scaling against underflow (bf16 has fp32's range and does not).
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=plan.precision == "fp16" and self.device.type == "cuda")
        self.augmentation = build_augmentation(c.augment)
        if self.augmentation is not None:
            self.augmentation = self.augmentation.to(self.device)

    def lr_at(self, step: int) -> float:
        """The schedule in epochs of the planned run; a run fitted to a time budget goes
        through the same schedule compressed into its fewer steps."""
        o = self.config.optim
        return o.lr * lr_factor(self._schedule_epoch(step), tuple(o.milestones), o.warmup_epochs)

    def _schedule_epoch(self, step: int, total_steps: int | None = None) -> float:
        """Where ``step`` lies in the planned schedule, in epochs, when the run is ``total_steps``
        long (default: as now planned)."""
        total_steps = self.total_steps if total_steps is None else total_steps
        if total_steps == self.planned_steps:
            return step / self.steps_per_epoch
        return step * self.planned_steps / (total_steps * self.steps_per_epoch)

    # ---- data --------------------------------------------------------------------------------
    def _syn_indices(self, step: int) -> np.ndarray:
        epoch, within = divmod(step, self.steps_per_epoch)
        b = self.config.batch_size
        return epoch_order(len(self.syn), self.config.seed, epoch)[within * b : (within + 1) * b]

    def _real_indices(self, step: int) -> np.ndarray:
        b = self.config.batch_size
        return stream_indices(len(self.real), self.config.seed, step * b, b)

    def _loader(self, ds: ShardedDataset, index_fn, steps: range):
        sampler = StepBatches(index_fn, steps, self.per_process, self.config.micro_batches, self.dist.rank)
        workers = self.config.workers
        return torch.utils.data.DataLoader(
            ds, batch_sampler=sampler, num_workers=workers, collate_fn=collate_batch,
            pin_memory=self.device.type == "cuda", persistent_workers=False, prefetch_factor=4 if workers else None,
        )

    def psi_at(self, step: int) -> float:
        if self.real is None:
            return 1.0
        rng = np.random.default_rng(stream_seed(self.config.seed, 5, step))
        return float(self.psi_grid[rng.integers(len(self.psi_grid))])

    def _to_input(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, non_blocking=True).float().div_(255.0)

    # ---- checkpoints -------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        c = self.config
        return {
            "backbone": backbone_spec(c.backbone, self.input_size, c.embedding_size),
            "model": self.module.backbone.state_dict(),
            "head": self.module.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            # Data order, psi and augmentation are seeded per step; this covers any other draw.
            "rng": {"torch": torch.get_rng_state()},
            "config": to_dict(c),
            "data": {"synthetic": str(self.syn.root), "real": str(self.real.root) if self.real else None,
                     "synthetic_classes": self.syn.num_classes, "real_classes": self.real.num_classes if self.real else 0,
                     "synthetic_signature": self.syn.signature,
                     "real_signature": self.real.signature if self.real else None},
            "history": self.history,
            "train_seconds": self.train_seconds,
            "fit": self.fit,
            "scaler": self.scaler.state_dict(),
            "runtime": self.runtime.record(),
        }

    def save(self) -> None:
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / CHECKPOINT
        tmp = self.out / f".{CHECKPOINT}.tmp"
        try:
            torch.save(self.checkpoint_state(), tmp)
            tmp.replace(path)
            self._write_metrics()
        except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError
            kept = (f"the previous checkpoint ({path}) is intact" if path.is_file()
                    else "no checkpoint was written")
            raise cannot_write(path, exc, tmp, kept) from None

    def _read_checkpoint(self, path: Path) -> dict:
        if not path.is_file():
            raise DataNotFoundError(f"nothing to resume: {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            state["config"]
        except Exception as exc:  # torch raises many types for a damaged file
            raise SynfaceError(f"cannot resume from {path}: not a readable training checkpoint "
                               f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        return state

    def config_conflict(self, path: Path) -> set[str]:
        """The config keys that keep this run from resuming the checkpoint ``path`` (empty
        when it may)."""
        saved = from_dict(TrainConfig, self._read_checkpoint(path)["config"], f"{path} (its config)")
        return _config_changes(to_dict(saved), to_dict(self.config)) - RESUMABLE_CHANGES

    def load(self, path: Path) -> None:
        state = self._read_checkpoint(path)
        changed = self.config_conflict(path)
        if changed:
            raise SynfaceError(f"{path} was written with another config ({', '.join(sorted(changed))} differ); "
                               f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change on --resume")
        if state["data"]["synthetic_classes"] != self.syn.num_classes:
            raise SynfaceError(f"{path} was trained on {state['data']['synthetic_classes']} classes, "
                               f"{self.syn.root} has {self.syn.num_classes}")
        data = state["data"]
        for role, ds in (("synthetic", self.syn), ("real", self.real)):
            saved_signature = data.get(f"{role}_signature")
            now = ds.signature if ds is not None else None
            if f"{role}_signature" in data and saved_signature != now:  # (older checkpoints have none)
                raise SynfaceError(
                    f"{path} was trained on other {role} data ({data.get(role)}, signature {saved_signature}); "
                    f"{ds.root if ds is not None else 'no --real'} is {now}: a resumed run must see the dataset it "
                    "started on")
        self.module.backbone.load_state_dict(state["model"])
        self.module.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.fit = state.get("fit")
        if self.fit is not None and self.fit["planned_steps"] == self.planned_steps:
            self.total_steps = self.fit["steps"]  # a fitted run resumes to its fitted length
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, resume: bool = False, stop_at_step: int | None = None, overwrite: bool = False) -> dict:
        """Train to the end (or to ``stop_at_step`` / the time budget), checkpointing each
        epoch; returns the final metrics. The run folder is locked while it runs; a folder
        that holds a run is continued (``resume``), replaced (``overwrite``) or refused."""
        with folder_lock(self.out, "its checkpoint") if self.dist.is_main else contextlib.nullcontext():
            return self._run(resume, stop_at_step, overwrite)

    def _refuse_to_overwrite(self) -> None:
        path = self.out / CHECKPOINT
        if not path.is_file():
            return
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            what = f"a run at step {state['step']} (epoch {state['epoch']:.2f})"
        except Exception:  # an unreadable checkpoint is still someone's run
            what = f"a checkpoint ({path.name})"
        raise SynfaceError(f"{self.out} holds {what}: pass --resume to continue it, or --overwrite to "
                           "start again and replace it")

    def _run(self, resume: bool, stop_at_step: int | None, overwrite: bool) -> dict:
        c = self.config
        if resume:
            self.load(self.out / CHECKPOINT)
        elif not overwrite and self.dist.is_main:
            self._refuse_to_overwrite()
        elif self.dist.is_main:  # --overwrite: the replaced run's event files would mix into the new curves
            for stale in self.out.glob("events.out.tfevents.*"):
                stale.unlink()
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_yaml(c) + self.runtime_comment())
            tqdm.write(f"runtime: {self.runtime.summary()}")
        validation = self._validation_set()
        end = self._session_end(stop_at_step)
        steps = range(self.step, end)
        syn_loader = iter(self._loader(self.syn, self._syn_indices, steps))
        real_loader = iter(self._loader(self.real, self._real_indices, steps)) if self.real else None
        started = time.time()
        deadline = None if c.time_budget_min is None else started + 60 * c.time_budget_min - self.train_seconds
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", disable=not self.progress)
        self.module.train()
        window_start, window_images, stopped_early = time.perf_counter(), 0, False
        fit_from = None  # (time, step) after this session's first step
        last_check = None  # (time, step) of the last look at the budget, once fitted
        for step in steps:
            if step >= self.total_steps:  # the run was fitted to its time budget
                break
            t0 = time.perf_counter()
            loss = self._train_step(step, syn_loader, real_loader)
            self.train_seconds += time.perf_counter() - t0
            self.step = step + 1
            if fit_from is None:
                fit_from = (time.time(), self.step)
            elif c.fit_to_budget and deadline is not None and self.fit is None and (
                    self.step - fit_from[1] >= FIT_AFTER_STEPS
                    # a clock-based trigger would fire at different steps on different ranks
                    or (self.dist.world == 1 and self.step - fit_from[1] >= 3
                        and time.time() - fit_from[0] >= FIT_AFTER_BUDGET_FRACTION * (deadline - started))):
                self._fit_to_budget(fit_from, deadline, validation is not None)
                last_check = (time.time(), self.step)
                bar.total, end = self.total_steps, self._session_end(stop_at_step)
            window_images += c.batch_size
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == end:
                elapsed = time.perf_counter() - window_start
                record = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                          "lr": self.lr_at(step), "loss": mean_over_ranks(loss, self.dist, self.device),
                          "psi": self.psi_at(step), "img_per_s": window_images / max(elapsed, 1e-9)}
                self.history.append(record)
                self._log_scalars(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", img_s=f"{record['img_per_s']:.0f}")
                window_start, window_images = time.perf_counter(), 0
            epoch_done = self.step % self.steps_per_epoch == 0 or self.step == self.total_steps
            out_of_time = deadline is not None and any_over_ranks(time.time() > deadline, self.dist, self.device)
            last = self.step == self.total_steps
            if epoch_done and validation is not None and (
                    last or (self.step // self.steps_per_epoch) % c.validation.every_epochs == 0):
                self._validate(validation)
            if epoch_done or out_of_time or self.step == end:
                self.save()
            if out_of_time:
                stopped_early = True
                break
            if epoch_done and self.fit is not None and last_check is not None and not last:
                self._refit_to_budget(fit_from, last_check, deadline, validation is not None)
                last_check = (time.time(), self.step)
                bar.total, end = self.total_steps, self._session_end(stop_at_step)
        bar.close()
        if validation is not None and (not self.history or "val_accuracy" not in self.history[-1]):
            self._validate(validation)
            self.save()
        summary = self.summary(stopped_early)
        if self.dist.is_main:
            (self.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
            self._plot()
            if self._tensorboard:
                self._tensorboard.close()
                self._tensorboard = None
        barrier(self.dist)
        return summary

    def _session_end(self, stop_at_step: int | None) -> int:
        """The step this session trains to: the run's (possibly fitted) length or ``stop_at_step``."""
        return self.total_steps if stop_at_step is None else min(stop_at_step, self.total_steps)

    def _train_step(self, step: int, syn_loader, real_loader) -> float:
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(step)
        psi = self.psi_at(step)
        total = 0.0
        for m in range(c.micro_batches):
            images, syn = next(syn_loader)
            x = self._to_input(images)
            real = None
            if real_loader is not None:
                real_images, real = next(real_loader)
                x = psi * x + (1.0 - psi) * self._to_input(real_images)
                real = real.to(self.device)
            chunk = self.dist.rank * c.micro_batches + m
            # Resize first: augmenting at the network's input size costs less when it is smaller.
            x = augment(self.augmentation, fit_input(x, self.input_size), stream_seed(c.seed, 6, step, chunk))
            x = x.mul_(2.0).sub_(1.0)
            # Batches arrive in channels-last memory (images are stored HWC); match the model.
            x = x.contiguous(memory_format=torch.channels_last if c.channels_last else torch.contiguous_format)
            syncing = self.ddp is None or m == c.micro_batches - 1
            context = self.ddp.no_sync() if not syncing else contextlib.nullcontext()
            with context:
                with self.runtime.autocast(), self._forward_rng(stream_seed(c.seed, 7, step, chunk)):
                    loss = self.forward(x, syn.to(self.device), real, psi)
                self.scaler.scale(loss / c.micro_batches).backward()
            total += float(loss.detach()) / c.micro_batches
        if not math.isfinite(total):
            raise SynfaceError(f"loss became {total} at step {step}; lower the learning rate or check the data")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    @contextlib.contextmanager
    def _forward_rng(self, seed: int):
        """Random draws inside the forward pass (MixStyle) from a stream seeded per step and
        chunk, as augmentation's are: the global RNG is also drawn on by data loaders, which a
        resumed run creates at another point, so it would not repeat an uninterrupted run."""
        if self.config.mixstyle.p == 0:
            yield
            return
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    def _fit_to_budget(self, since: tuple[float, int], deadline: float, validating: bool) -> None:
        """Shrink the run to the steps that fit before ``deadline`` at the rate measured
        since ``since`` (time, step), keeping its schedule's shape (lr_at compresses it)."""
        per_step = self._seconds_per_step(since)
        fitted = self._affordable_steps(per_step, deadline, validating)
        self.fit = {"planned_steps": self.planned_steps, "steps": fitted, "seconds_per_step": round(per_step, 3),
                    "img_per_s": round(self.config.batch_size / per_step, 1),
                    "budget_min": self.config.time_budget_min}
        if fitted < self.total_steps:
            tqdm.write(f"time budget {self.config.time_budget_min:g} min at {self.fit['img_per_s']:.0f} img/s: "
                       f"training {fitted} of the {self.planned_steps} planned steps, same schedule compressed")
        self.total_steps = fitted

    def _refit_to_budget(self, since: tuple[float, int], last_check: tuple[float, int], deadline: float,
                         validating: bool) -> None:
        """At an epoch's end, size a fitted run again to the rate it now runs at. The first fit
        times only a few steps, some of them on batches the loader prefetched while the step
        compiled, and a shared machine's speed swings from minute to minute: a run fitted on
        its first steps could still hit its deadline, or end with minutes unused. Shrinking
        counts the slower of the rate since the first step and over the last epoch; growing
        (back towards the planned steps) never takes the lr back up (_longest_plan_keeping_lr)."""
        per_step = max(self._seconds_per_step(since), self._seconds_per_step(last_check))
        fitted = self._affordable_steps(per_step, deadline, validating, most=self._longest_plan_keeping_lr())
        if fitted != self.total_steps:
            tqdm.write(f"now {self.config.batch_size / per_step:.0f} img/s: training {fitted} of the "
                       f"{self.planned_steps} planned steps (was {self.total_steps})")
            self.fit.update(steps=fitted, seconds_per_step=round(per_step, 3),
                            img_per_s=round(self.config.batch_size / per_step, 1),
                            refits=self.fit.get("refits", 0) + 1)
            self.total_steps = fitted

    def _longest_plan_keeping_lr(self) -> int:
        """The most steps (up to the planned ones) this run may be stretched to now. Stretching
        a compressed schedule moves the current step to an earlier point of it, which must not
        lie before a milestone already passed or inside the warm-up: the lr stays the same."""
        o = self.config.optim
        epoch = self._schedule_epoch(self.step)
        floor = max([o.warmup_epochs] + [m for m in o.milestones if m <= epoch])
        if floor <= 0:
            return self.planned_steps
        longest = min(self.planned_steps, int(self.step * self.planned_steps / (floor * self.steps_per_epoch)))
        # lr_at's own arithmetic decides: one step shorter where its float rounds below the floor
        while longest > self.total_steps and self._schedule_epoch(self.step, longest) < floor:
            longest -= 1
        return max(self.total_steps, longest)

    def _seconds_per_step(self, since: tuple[float, int]) -> float:
        start, first = since
        return (time.time() - start) / max(self.step - first, 1)

    def _affordable_steps(self, per_step: float, deadline: float, validating: bool, most: int | None = None) -> int:
        """Steps (all ranks agreeing) that fit before ``deadline`` at ``per_step`` seconds, never
        more than ``most`` (default: those now planned) nor fewer than done."""
        # Validation and the per-epoch checkpoint cost a few steps' time each: keep 5 % of the
        # whole budget spare, the same at every re-fit (so growing never eats into it).
        reserve = 0.05 * 60 * self.config.time_budget_min + (3 * per_step if validating else 0.0)
        affordable = self.step + int(max(deadline - time.time() - reserve, 0.0) / per_step)
        most = self.total_steps if most is None else most
        return int(min_over_ranks(max(self.step, min(most, affordable)), self.dist, self.device))

    def runtime_comment(self) -> str:
        """config.yaml keeps the config as given (``auto`` stays auto, so the file reruns
        anywhere); what auto resolved to on this machine follows as comments."""
        plan = self.runtime
        lines = [f"# runtime on this machine: {plan.summary()}"]
        lines += [f"#   {key}: {getattr(plan, key)}  ({why})" for key, why in
                  (("precision", plan.reasons["precision"]), ("compile", plan.reasons["compile"]),
                   ("channels_last", plan.reasons["channels_last"]), ("threads", plan.reasons["threads"]))]
        return "\n".join(lines) + "\n"

    def _validation_set(self) -> ShardedDataset | None:
        v = self.config.validation
        if v.identities < 2:
            return None
        folder = self.validation_root
        if not (folder / "dataset.json").is_file():
            if self.progress:
                tqdm.write(f"no validation split at {folder}: training without synthetic validation (`synface "
                           "generate` writes one; `synface validation-split DATA` adds one to any dataset)")
            return None
        return ShardedDataset(folder)

    def _validate(self, validation: ShardedDataset) -> None:
        if not self.dist.is_main:
            return
        result = validate(self.module.backbone, validation, self.input_size, self.device, self.runtime.precision,
                          self.runtime.channels_last)
        record = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4), **result}
        self.history.append(record)
        self._log_scalars(record)
        tqdm.write(f"epoch {record['epoch']:.2f}: synthetic validation accuracy {100 * result['val_accuracy']:.2f} %")

    # ---- reporting ---------------------------------------------------------------------------
    def summary(self, stopped_early: bool) -> dict:
        losses = [h for h in self.history if "loss" in h]
        vals = [h for h in self.history if "val_accuracy" in h]
        rates = [h["img_per_s"] for h in losses[1:]] or [h["img_per_s"] for h in losses]
        return {
            "steps": self.step,
            "epochs": round(self.step / self.steps_per_epoch, 4),
            "planned_steps": self.total_steps,
            "preset_steps": self.planned_steps,
            "fitted_to_budget": self.fit,
            "stopped_by_time_budget": stopped_early,
            "final_loss": losses[-1]["loss"] if losses else None,
            "val_accuracy": vals[-1]["val_accuracy"] if vals else None,
            "train_img_per_s": float(np.median(rates)) if rates else None,
            "train_seconds": round(self.train_seconds, 1),
            "images_seen": self.step * self.config.batch_size,
            "synthetic_images": len(self.syn),
            "synthetic_classes": self.syn.num_classes,
            "real_images": len(self.real) if self.real else 0,
            "real_classes": self.real.num_classes if self.real else 0,
            "processes": self.dist.world,
            "device": str(self.device),
            "runtime": self.runtime.record(),
        }

    def _write_metrics(self) -> None:
        keys = ["step", "epoch", "lr", "loss", "psi", "img_per_s", "val_accuracy", "val_auc"]
        with (self.out / "metrics.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.history)

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        losses = [h for h in self.history if "loss" in h]
        vals = [h for h in self.history if "val_accuracy" in h]
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
        ax[0].plot([h["epoch"] for h in losses], [h["loss"] for h in losses], color="#4a7ab5")
        ax[0].set(xlabel="epoch", ylabel="loss", title="training loss")
        ax[1].plot([h["epoch"] for h in vals], [100 * h["val_accuracy"] for h in vals], "o-", color="#c0504d")
        ax[1].set(xlabel="epoch", ylabel="accuracy (%)", title="held-out synthetic verification")
        fig.tight_layout()
        fig.savefig(self.out / "loss.png", dpi=110)
        plt.close(fig)

    def close(self) -> None:
        if self._tensorboard:
            self._tensorboard.close()
        shutdown(self.dist)

    def _log_scalars(self, record: dict) -> None:
        """The record's numbers as TensorBoard scalars (event files beside metrics.csv) when
        the ``tensorboard`` package is installed; main process only."""
        if not self.dist.is_main or self._tensorboard is False:
            return
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional: synface[tensorboard]
                self._tensorboard = False
                return
            # purge_step: a resumed run drops the events a killed run logged after its checkpoint
            self._tensorboard = SummaryWriter(log_dir=str(self.out), purge_step=self.step)
        for key, value in record.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                group = "validation" if key.startswith("val_") else "train"
                self._tensorboard.add_scalar(f"{group}/{key}", value, record["step"])
        self._tensorboard.flush()

