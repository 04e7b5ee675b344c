"""Run the studies: every planned run x seed trained once, scored on each benchmark once.

A run's folder (``runs/reproduce/<scale>/<key>``) is named by its key: the resolved spec
with its seed, the generator signature, the real subset and the training config. Studies
that plan the same run (the cross-domain SynFace is identity-mixup's Syn1) share it, and
a killed reproduction resumes: finished trainings are skipped, an interrupted one
continues from its checkpoint, and scores are stored per benchmark as they finish.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from synface.config import ConfigError, key_dict
from synface.datasets.build import generate_dataset, generator_config
from synface.datasets.real import import_identity_folder
from synface.datasets.storage import ShardedDataset
from synface.paths import atomic_file
from synface.evaluate.pairs import PairList, load_benchmark, subset_pairs
from synface.experiments.demo import replace_stale_run, train_evaluate
from synface.experiments.reproduce.studies import (
    MEASURES, SCALE_BASE, PlannedRun, Study, parse_benchmark, plan_study, steps_to_epochs,
)
from synface.generate.generator import ensure_generator_inputs, generator_signature
from synface.paths import data_path
from synface.train.config import TrainConfig, load_train_config

# Validation of held-out synthetic people once, at the end: an equal-steps run on a small
# set has hundreds of epochs.
FINAL_VALIDATION_ONLY = {"validation.every_epochs": 10**6}


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w") as fh:
        fh.write(json.dumps(data, indent=2) + "\n")


def digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Reproduction:
    """One scale's runs, data and benchmarks under ``out`` / ``data``."""

    def __init__(self, scale: str, seeds: int | None = None, out: str | Path = "runs/reproduce",
                 data: str | Path = "data/reproduce", workers: int = 2, progress: bool = True,
                 gpus: int | None = None) -> None:
        """``gpus``: training processes per run; above 1 each run trains under ``torchrun``
        (default: every visible GPU at paper scale, else 1)."""
        if scale not in SCALE_BASE:
            raise ConfigError(f"unknown scale {scale!r}; known: {', '.join(SCALE_BASE)}")
        self.scale = scale
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count() if scale == "paper" else 1
        self.gpus = max(1, gpus)
        self.seeds = tuple(range(SCALE_BASE[scale]["seeds"] if seeds is None else seeds))
        self.out, self.data = Path(out) / scale, Path(data) / scale
        self.workers, self.progress = workers, progress
        self.pairs_per_fold = SCALE_BASE[scale]["pairs_per_fold"]
        self._benchmarks: dict[str, PairList] = {}

    # ---- planning ------------------------------------------------------------------------

    def jobs(self, study: Study) -> list[dict]:
        """Every (run, seed) of ``study``: its config, key and folders; validated up front."""
        jobs = []
        for planned in plan_study(study, self.scale):
            for seed in self.seeds:
                jobs.append(self._job(planned, seed))
        return jobs

    def _job(self, run: PlannedRun, seed: int) -> dict:
        spec = replace(run.spec, seed=seed) if run.spec is not None else None
        real = self._real_folder(run) if run.real is not None else None
        synthetic = self.data / f"{spec.name}-{digest(key_dict(spec))}" if spec is not None else None
        train_data = synthetic if synthetic is not None else real
        images = spec.num_images if spec is not None else None
        config, overrides = self._config(run, seed, images)
        signature = None
        if spec is not None:
            ensure_generator_inputs(generator_config(spec))
            signature = generator_signature(generator_config(spec))
        real_desc = [run.real, run.real_identities, run.real_samples] if run.real else None
        key = digest(run.kind, key_dict(spec) if spec else None, signature, real_desc, key_dict(config))
        return {"run": run, "seed": seed, "spec": spec, "config": config, "key": key, "generator": signature,
                "synthetic": synthetic, "real": real, "train_data": train_data, "folder": self.out / key,
                "overrides": overrides}

    def _config(self, run: PlannedRun, seed: int, images: int | None) -> tuple[TrainConfig, dict]:
        """The run's training config and the preset overrides that make it."""
        overrides = {**FINAL_VALIDATION_ONLY, **run.train, "seed": seed}
        config = load_train_config(run.preset, overrides)
        if run.steps is not None:
            if images is None:  # a real-only run: its size is known once imported
                images = self._real_images(run)
            o = config.optim
            overrides.update(steps_to_epochs(run.steps, images, config.batch_size, tuple(o.milestones), o.epochs,
                                             o.warmup_epochs))
            config = load_train_config(run.preset, overrides)
        return config, overrides

    def _real_folder(self, run: PlannedRun) -> Path:
        size = run.spec.size if run.spec is not None else "112x96"
        return self.data.parent / "real" / f"{run.real}-{run.real_identities or 'all'}x{run.real_samples or 'all'}-{size}"

    def _real_images(self, run: PlannedRun) -> int:
        folder = self.ensure_real(run)
        return json.loads((folder / "dataset.json").read_text())["num_images"]

    def ensure_real(self, run: PlannedRun) -> Path:
        """The real subset (first N people with at least S photos, S each), imported once."""
        folder = self._real_folder(run)
        if not (folder / "dataset.json").is_file():
            import_identity_folder(data_path(run.real), folder, size=run.spec.size if run.spec else "112x96",
                                   min_images=run.real_samples or 1, max_identities=run.real_identities,
                                   max_per_identity=run.real_samples)
            people = json.loads((folder / "dataset.json").read_text())["num_classes"]
            if run.real_identities is not None and people < run.real_identities:
                # celeba-299 has 223 people: the paper's 1K / 2K real people do not exist here.
                tqdm.write(f"{run.study}/{run.name}: {run.real} has {people} people with >= {run.real_samples or 1} "
                           f"photos, not the {run.real_identities} asked for; the run uses all {people}")
        return folder

    # ---- running -------------------------------------------------------------------------

    def run_job(self, job: dict) -> dict:
        """Train (or resume, or reuse) one job and score it on its benchmarks."""
        folder: Path = job["folder"]
        result_file = folder / "result.json"
        result = trained_result(job)
        if result is None:
            result = self._train(job)
            write_json_atomic(result_file, result)
        for benchmark in job["run"].benchmarks:
            if benchmark not in result["scores"]:
                result["scores"][benchmark] = self._score(job, folder, benchmark, result)
                write_json_atomic(result_file, result)
        return result

    def _train(self, job: dict) -> dict:
        run: PlannedRun = job["run"]
        seconds = {}
        t0 = time.perf_counter()
        if job["spec"] is not None:
            replace_stale_run(job["spec"], job["synthetic"], job["folder"])
            generate_dataset(job["spec"], job["synthetic"], workers=self.workers, progress=self.progress)
        if run.real is not None:
            self.ensure_real(run)
        seconds["data_s"] = round(time.perf_counter() - t0, 1)
        job["folder"].mkdir(parents=True, exist_ok=True)
        write_json_atomic(job["folder"] / "run.json", describe_job(job))
        if self.gpus > 1:
            t0 = time.perf_counter()
            subprocess.run(torchrun_command(job, self.gpus), check=True)
            summary = json.loads((job["folder"] / "metrics.json").read_text())
            seconds["train_s"] = round(time.perf_counter() - t0, 1)
        else:
            trained = train_evaluate(job["train_data"], job["config"], job["folder"],
                                     real=job["real"] if run.kind == "mix" else None, benchmark=None)
            seconds.update(trained["seconds"])
            summary = trained["summary"]
        return {"key": job["key"], **describe_job(job), "scores": {},
                "training": {k: summary[k] for k in ("steps", "epochs", "final_loss", "val_accuracy", "train_img_per_s")},
                "precision": summary["runtime"]["precision"], "seconds": seconds}

    def benchmark(self, name: str) -> PairList:
        """A benchmark by study name, built on first use (Syn-LFW renders LFW's 13,233 images
        once per ratio); at smoke scale only its slice of pairs."""
        if name in self._benchmarks:
            return self._benchmarks[name]
        lfw = load_benchmark("lfw")
        subset = subset_pairs(lfw, self.pairs_per_fold) if self.pairs_per_fold else lfw
        if name == "lfw":
            bench = subset
        else:
            from synface.datasets.syn_lfw import SynLfwConfig, build_syn_lfw

            ratio = parse_benchmark(name)
            folder = self.data.parent / "benchmarks" / (f"{name}-slice{self.pairs_per_fold}" if self.pairs_per_fold else name)
            if not (folder / "syn_lfw.json").is_file():
                only = list(subset.images) if self.pairs_per_fold else None
                build_syn_lfw(folder, data_path("lfw"), SynLfwConfig(ratio=ratio), only=only, progress=self.progress)
            bench = load_benchmark(str(folder))
            bench = subset_pairs(bench, self.pairs_per_fold) if self.pairs_per_fold else bench
            bench = replace(bench, name=name)
        self._benchmarks[name] = bench
        return bench

    def _score(self, job: dict, folder: Path, benchmark: str, result: dict) -> dict:
        if benchmark in MEASURES:
            raise ValueError(f"{benchmark} is measured by its study, not scored per run")
        from synface.evaluate.benchmark import evaluate_model
        from synface.faces.templates import parse_size
        from synface.models.checkpoint import load_backbone

        model, _ = load_backbone(folder / "checkpoint.pt")
        size = parse_size(job["config"].input_size)
        scored = evaluate_model(model, self.benchmark(benchmark), size, amp=result["precision"])
        return {k: scored[k] for k in ("accuracy_mean", "accuracy_std", "auc", "seconds")}

    def run_studies(self, studies: list[Study]):
        """Yield each study's jobs and results as soon as its runs are done, in order. A run
        planned by several studies runs once, scored on every benchmark any of them asks of
        it; an overall bar counts the training images of the distinct runs still to train, with
        an ETA."""
        planned = [(study, self.jobs(study)) for study in studies]
        unique = {}
        for _, jobs in planned:
            for job in jobs:
                known = unique.setdefault(job["key"], job)
                known["run"] = _union_benchmarks(known["run"], job["run"])
        results = {}
        # Counted in training images (steps x batch), the bulk of the time, so the ETA holds
        # across run and batch sizes; runs trained before are left out, or their instant
        # "progress" would make the rate, and so the ETA, a fiction.
        done = {key for key, job in unique.items() if trained_result(job) is not None}
        work = {key: 0 if key in done else planned_steps(job) * job["config"].batch_size for key, job in unique.items()}
        desc = f"reproduce {self.scale} ({len(unique)} runs, {len(done)} trained before)"
        with tqdm(total=sum(work.values()), desc=desc, unit="img", unit_scale=True,
                  disable=not self.progress) as bar:
            for study, jobs in planned:
                for job in jobs:
                    if job["key"] not in results:
                        bar.set_postfix_str(f"{job['run'].study}/{job['run'].name} seed {job['seed']}")
                        results[job["key"]] = self.run_job(unique[job["key"]])
                        bar.update(work[job["key"]])
                yield {"study": study, "jobs": jobs, "results": [results[j["key"]] for j in jobs]}


def trained_result(job: dict) -> dict | None:
    """The result a finished training of this exact job left in its folder, else None."""
    result_file = job["folder"] / "result.json"
    if not result_file.is_file():
        return None
    result = json.loads(result_file.read_text())
    return result if result.get("key") == job["key"] and "training" in result else None


def planned_steps(job: dict) -> int:
    """Training steps of ``job`` as planned (its fixed budget, else epochs x batches)."""
    if job["run"].steps is not None:
        return job["run"].steps
    images = job["spec"].num_images if job["spec"] is not None else 0
    return max(1, round(job["config"].optim.epochs * max(1, images // job["config"].batch_size)))


def torchrun_command(job: dict, gpus: int) -> list[str]:
    """``torchrun`` training one job on ``gpus`` processes with the job's exact config
    (every override passed as ``--set``); resumes a run that has a checkpoint."""
    run: PlannedRun = job["run"]
    command = ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "synface.cli", "train", run.preset,
               "--data", str(job["train_data"]), "--out", str(job["folder"])]
    if run.kind == "mix":
        command += ["--real", str(job["real"])]
    if (job["folder"] / "checkpoint.pt").is_file():
        command.append("--resume")
    for key, value in job["overrides"].items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    return command


def _union_benchmarks(a: PlannedRun, b: PlannedRun) -> PlannedRun:
    return replace(a, benchmarks=list(dict.fromkeys(a.benchmarks + b.benchmarks)))


def describe_job(job: dict) -> dict:
    run: PlannedRun = job["run"]
    spec = job["spec"]
    data = {"kind": run.kind, "seed": job["seed"], "generator": job["generator"], "preset": run.preset,
            "overrides": job["overrides"], "steps_budget": run.steps}
    if spec is not None:
        data["spec"] = {"name": spec.name, "groups": [[g.identities, g.samples] for g in spec.group_list],
                        "identities": spec.num_identities, "images": spec.num_images, "mixup": spec.mixup}
    if run.real is not None:
        info = json.loads((job["real"] / "dataset.json").read_text()) if (job["real"] / "dataset.json").is_file() else {}
        data["real"] = {"folder": run.real, "identities": info.get("num_classes", run.real_identities),
                        "samples": run.real_samples, "images": info.get("num_images")}
    return data


def class_embeddings(model, dataset: ShardedDataset, classes: int, size, precision: str, per_class: int | None = None,
                     first_class: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and labels of the images of ``classes`` classes of ``dataset``."""
    from synface.evaluate.embed import embed_crops

    labels = dataset.soft_labels(np.arange(len(dataset))).label.numpy()
    wanted = np.unique(labels)[first_class:first_class + classes]
    index = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in wanted])
    embeddings = embed_crops(model, dataset.images(index), amp=precision, desc="embed classes", input_size=size)
    return embeddings, labels[index]


def intra_spread(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine distance of each embedding to its class's mean direction."""
    spreads = []
    for c in np.unique(labels):
        members = embeddings[labels == c]
        centre = members.mean(0)
        centre /= np.linalg.norm(centre) + 1e-12
        spreads.append(float(np.mean(1.0 - members @ centre)))
    return float(np.mean(spreads))
