"""Generate datasets from specs: sharded, parallel, resumable, splittable across machines.

Shard k holds images [k * shard_size, (k + 1) * shard_size) of the spec's image plan. Every
image depends only on (spec, image row) — never on batch, worker or shard split — so
``--workers``, ``--shard i/N`` and ``merge`` all give the bytes a single run would.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from synface.config import ConfigError, load_yaml
from synface.datasets.spec import DatasetSpec, ImagePlan, load_spec, plan_images, read_spec, resolve_spec
from synface.datasets.storage import (
    NOT_WRITTEN,
    load_shard_meta,
    meta_dtype,
    read_marker,
    remove_partial_files,
    shard_complete,
    shard_files,
    shard_intact,
    shard_problem,
    write_dataset_info,
    write_shard,
)
from synface.errors import SynfaceError, cannot_write
from synface.locks import LOCK_NAME, folder_lock
from synface.facemodel.latents import active_blendshapes
from synface.faces.templates import parse_size
from synface.generate.generator import FaceGenerator, GeneratorConfig, ensure_generator_inputs, generator_signature

RENDER_BATCH = 64


@dataclass(frozen=True)
class ShardSelection:
    """``--shard i/N``: this run makes the shards k with k % N == i."""

    index: int = 0
    count: int = 1

    @staticmethod
    def parse(text: str | None) -> ShardSelection:
        if not text:
            return ShardSelection()
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise SynfaceError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
        if not 0 <= i < n:
            raise SynfaceError(f"--shard {text}: need 0 <= i < N")
        return ShardSelection(i, n)

    def picks(self, shard: int) -> bool:
        return shard % self.count == self.index


def make_generator(spec: DatasetSpec) -> FaceGenerator:
    return FaceGenerator(generator_config(spec))


def generator_config(spec: DatasetSpec) -> GeneratorConfig:
    return GeneratorConfig(size=parse_size(spec.size), seed=spec.seed, sampler=spec.sampler, appearance=spec.appearance,
                           appearance_prior=spec.appearance_prior, appearance_fit=spec.appearance_fit,
                           background=spec.background, alignment=spec.alignment, refiner=spec.refiner or None,
                           hairline=spec.hairline)


def render_rows(generator, spec: DatasetSpec, plan: ImagePlan) -> tuple[np.ndarray, np.ndarray]:
    """Images and metadata rows for ``plan`` (any slice of the spec's plan)."""
    from synface.generate.generator import image_keys

    images, metas = [], []
    for start in range(0, len(plan), RENDER_BATCH):
        rows = plan.rows(start, start + RENDER_BATCH)
        identities = [int(v) for v in rows.label]
        vectors = None
        if np.any(rows.secondary >= 0):
            partners = np.where(rows.secondary >= 0, rows.secondary, rows.label)
            vectors = generator.mixed_identities(identities, partners, rows.phi, spec.namespace)
        latents = generator.latents(identities, [int(s) for s in rows.sample], spec.namespace, identity_vectors=vectors)
        keys = image_keys(identities, rows.sample)
        images.append(generator.render(latents, keys))
        metas.append(latent_meta(latents, rows))
    return np.concatenate(images), np.concatenate(metas)


def latent_meta(latents, rows: ImagePlan) -> np.ndarray:
    meta = np.zeros(len(rows), meta_dtype(latents.shape.shape[1], latents.appearance.shape[1], latents.expression.shape[1]))
    meta["label"] = rows.label
    meta["identity"] = rows.label
    meta["sample"] = rows.sample
    meta["secondary"] = rows.secondary
    meta["phi"] = rows.phi
    for name in ("shape", "appearance", "expression", "pose", "camera_distance", "background"):
        meta[name] = getattr(latents, name)
    meta["illumination"] = latents.illumination.reshape(len(rows), -1)
    return meta


# ---- one run ---------------------------------------------------------------------------------


def recorded_generator(root: Path) -> str:
    """The generator signature a dataset folder records (generator.txt)."""
    stamp = root / "generator.txt"
    return stamp.read_text().strip() if stamp.is_file() else "before uv-texture-1"


def stale_generator(root: Path, spec: DatasetSpec) -> str | None:
    """The generator that rendered ``root`` when it holds ``spec`` rendered by another one
    (an older version of this code, another basis), else None."""
    if not (root / "spec.yaml").is_file() or (root / "spec.yaml").read_text() != spec.to_yaml():
        return None
    made_by = recorded_generator(root)
    return None if made_by == generator_signature(generator_config(spec)) else made_by


def older_version_of_spec(root: Path, spec: DatasetSpec) -> bool:
    """Whether ``root`` holds a dataset of ``spec``'s name whose spec differs from it (a
    default of the spec changed since it was made)."""
    spec_file = root / "spec.yaml"
    if not spec_file.is_file() or spec_file.read_text() == spec.to_yaml():
        return False
    try:
        return load_yaml(spec_file).get("name") == spec.name
    except ConfigError:
        return False  # not a spec we wrote: prepare_output refuses it by name


def prepare_output(root: Path, spec: DatasetSpec) -> None:
    """Create ``root`` for ``spec``, or check that an existing one was started for the same spec."""
    root.mkdir(parents=True, exist_ok=True)
    signature = generator_signature(generator_config(spec))
    spec_file = root / "spec.yaml"
    text = spec.to_yaml()
    if spec_file.is_file():
        if spec_file.read_text() != text:
            raise SynfaceError(
                f"{root} holds a different dataset (its spec.yaml differs from {spec.name}'s); "
                "choose another --out or delete it"
            )
        made_by = recorded_generator(root)
        if made_by != signature:  # (the signature hashes the basis file: computed once here)
            raise SynfaceError(
                f"{root} was rendered by generator {made_by!r}, this code renders {signature!r}: "
                "its images would not match new ones; choose another --out or delete it"
            )
    else:
        (root / "generator.txt").write_text(signature + "\n")
        tmp = spec_file.with_name("spec.yaml.tmp")
        tmp.write_text(text)
        tmp.replace(spec_file)
    removed = remove_partial_files(root)
    if removed:
        tqdm.write(f"removed {removed} partial file(s) of an interrupted run")


def generate_dataset(
    spec: DatasetSpec,
    out: str | Path,
    workers: int = 1,
    shards: ShardSelection = ShardSelection(),
    resume: bool = True,
    progress: bool = True,
    ray_address: str | None = None,
    ray_task=None,
) -> dict:
    """Make the selected shards of ``spec`` under ``out``; finish the dataset when all exist.

    ``ray_address``: render one Ray task per shard on a Ray cluster ("local" starts one on
    this machine, "auto" joins the running one, or an address); ``out`` must then be on a
    filesystem every node shares. Lost tasks are retried; bytes equal a one-process run.
    ``ray_task`` replaces the task function (tests inject faults with it).

    Returns a summary: shards made now, skipped (already there), and whether the dataset is
    complete.
    """
    root = Path(out)
    ensure_generator_inputs(generator_config(spec))
    if not resume and root.exists() and any(p.name != LOCK_NAME for p in root.iterdir()):
        raise SynfaceError(f"{root} is not empty and --no-resume was given")
    with folder_lock(root, "its shards"):
        return _generate_locked(spec, root, workers, shards, progress, ray_address, ray_task)


def _generate_locked(spec: DatasetSpec, root: Path, workers: int, shards: ShardSelection, progress: bool,
                     ray_address: str | None = None, ray_task=None) -> dict:
    prepare_output(root, spec)
    plan = plan_images(spec)
    mine = [k for k in range(spec.num_shards) if shards.picks(k)]
    # Every existing shard is checked against its marker's CRCs: a damaged one is made again.
    problems = {k: shard_problem(root, k) for k in mine}
    todo = [k for k in mine if problems[k] is not None]
    for k in todo:
        if problems[k] != NOT_WRITTEN:
            tqdm.write(f"{shard_files(root, k)['images'].name}: {problems[k]}; rendering it again")
    sizes = {k: len(_shard_rows(spec, k)) for k in mine}
    bar = tqdm(
        total=sum(sizes.values()),
        initial=sum(sizes[k] for k in mine if k not in todo),
        unit="img",
        desc=f"generate {spec.name}",
        disable=not progress,
        smoothing=0.1,
    )
    with bar:
        if ray_address is not None:
            _render_with_ray(spec, root, todo, sizes, bar, ray_address, ray_task or ray_shard_task)
        elif workers <= 1 or len(todo) <= 1:
            generator = make_generator(spec) if todo else None
            for k in todo:
                _make_shard(generator, spec, plan, root, k)
                bar.update(sizes[k])
        else:
            context = multiprocessing.get_context("spawn")
            with futures.ProcessPoolExecutor(
                min(workers, len(todo)), mp_context=context, initializer=_worker_init, initargs=(spec,)
            ) as pool:
                jobs = {pool.submit(_worker_shard, str(root), k): k for k in todo}
                for job in futures.as_completed(jobs):
                    job.result()
                    bar.update(sizes[jobs[job]])
    complete = all(shard_complete(root, k) for k in range(spec.num_shards))
    if complete:
        finish_synthetic_dataset(root, spec)
    repaired = sum(problems[k] != NOT_WRITTEN for k in todo)
    return {"made": len(todo), "repaired": repaired, "skipped": len(mine) - len(todo), "complete": complete,
            "num_shards": spec.num_shards}


def _shard_rows(spec: DatasetSpec, k: int) -> range:
    return range(k * spec.shard_size, min((k + 1) * spec.shard_size, spec.num_images))


def _make_shard(generator, spec: DatasetSpec, plan: ImagePlan, root: Path, k: int) -> None:
    rows = _shard_rows(spec, k)
    images, meta = render_rows(generator, spec, plan.rows(rows.start, rows.stop))
    write_shard(root, k, images, meta)


_WORKER: dict = {}


def _worker_init(spec: DatasetSpec) -> None:
    from synface.runtime import one_core_per_process, tune_cpu_allocator

    tune_cpu_allocator()
    one_core_per_process()
    _WORKER.update(spec=spec, plan=plan_images(spec), generator=make_generator(spec))


def _worker_shard(root: str, k: int) -> int:
    _make_shard(_WORKER["generator"], _WORKER["spec"], _WORKER["plan"], Path(root), k)
    return k


# Ray retries a task whose worker died (a lost node, an OOM kill) this many times.
RAY_RETRIES = 3


def ray_shard_task(spec: DatasetSpec, root: str, k: int) -> int:
    """One shard, in a Ray worker: the worker keeps its generator between the tasks it runs.
    A task killed mid-shard leaves only ``*.tmp`` files (writes are atomic), so a retry
    writes the same bytes."""
    if _WORKER.get("spec") != spec:
        _worker_init(spec)
    return _worker_shard(root, k)


def _render_with_ray(spec: DatasetSpec, root: Path, todo: list[int], sizes: dict, bar, address: str, task) -> None:
    try:
        import ray
    except ImportError:
        raise SynfaceError("--ray needs `pip install ray` (synface[ray])") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=RAY_RETRIES)(task)
        pending = {remote.remote(spec, str(root), k): k for k in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None)
                    why = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc).strip().splitlines()[-1]
                    raise SynfaceError(f"shard {pending[ref]} failed on Ray (after up to {RAY_RETRIES} retries "
                                       f"of a lost worker): {why}") from None
                bar.update(sizes[pending.pop(ref)])
    finally:
        if started:
            ray.shutdown()


# ---- finishing and merging -------------------------------------------------------------------


def _copy_shard(part: Path, out: Path, k: int) -> None:
    src, dst = shard_files(part, k), shard_files(out, k)
    dst["images"].parent.mkdir(parents=True, exist_ok=True)
    for key in ("images", "meta", "marker"):  # marker last: it vouches for the others
        tmp = dst[key].with_name(dst[key].name + ".tmp")
        try:
            shutil.copyfile(src[key], tmp)
            tmp.replace(dst[key])
        except OSError as exc:
            raise cannot_write(dst[key], exc, tmp, kept="shards copied before it are intact") from None


def finish_synthetic_dataset(root: Path, spec: DatasetSpec) -> None:
    h, w = parse_size(spec.size)
    info = {
        "kind": "synthetic",
        "name": spec.name,
        "num_images": spec.num_images,
        "num_classes": spec.num_identities,
        "num_shards": spec.num_shards,
        "shard_size": spec.shard_size,
        "size": [h, w],
        "mixup": spec.uses_mixup,
    }
    write_dataset_info(root, info, _manifest_rows(root, spec))


def _manifest_rows(root: Path, spec: DatasetSpec):
    """One readable row per image, shard by shard (the full latent vectors stay in the shards)."""
    for k in range(spec.num_shards):
        meta = load_shard_meta(root, k)
        for r, m in enumerate(meta):
            yaw, pitch, roll = np.degrees(m["pose"])
            yield {
                "index": k * spec.shard_size + r,
                "shard": k,
                "row": r,
                "label": int(m["label"]),
                "secondary": int(m["secondary"]),
                "phi": f"{m['phi']:.4f}",
                "identity": int(m["identity"]),
                "sample": int(m["sample"]),
                "yaw_deg": f"{yaw:.2f}",
                "pitch_deg": f"{pitch:.2f}",
                "roll_deg": f"{roll:.2f}",
                "camera_distance_cm": f"{m['camera_distance']:.1f}",
                "active_blendshapes": int(active_blendshapes(m["expression"])),
            }


# ---- the held-out validation split -----------------------------------------------------------
VALIDATION_SPLIT = "validation"  # a dataset's held-out split: DATASET/validation, a dataset itself


def validation_spec(train_spec: DatasetSpec | None, identities: int, samples: int) -> DatasetSpec:
    """The training set's generator settings (the defaults for real data), other people
    (seed namespace ``validation``), no mixup."""
    base = train_spec or load_spec("syn_10k_50")
    spec = replace(base, name=f"{base.name}-validation", namespace="validation", mixup="none", groups=None,
                   identities=identities, samples=samples, scale=1.0)
    return resolve_spec(spec)


def generate_validation_split(root: str | Path, identities: int = 100, samples: int = 4,
                              progress: bool = False) -> Path | None:
    """Write ``root/validation``: ``identities`` x ``samples`` held-out synthetic people for
    training's validation (never LFW), rendered like ``root``'s data (with the default
    generator for imported real data). Resumable; a split of another size is replaced (it is
    derived data). None when ``identities`` < 2 (validation off)."""
    if identities < 2:
        return None
    root = Path(root)
    folder = root / VALIDATION_SPLIT
    spec = validation_spec(read_spec(root), identities, samples)
    if (folder / "spec.yaml").is_file() and (folder / "spec.yaml").read_text() != spec.to_yaml():
        shutil.rmtree(folder)
    generate_dataset(spec, folder, progress=progress)
    return folder


def merge_datasets(parts: list[str | Path], out: str | Path) -> dict:
    """Copy the shards of several partial runs of one spec into ``out`` and finish it."""
    out = Path(out)
    specs = []
    for part in map(Path, parts):
        if not (part / "spec.yaml").is_file():
            raise SynfaceError(f"{part}: not a dataset part (no spec.yaml)")
        specs.append((part, (part / "spec.yaml").read_text()))
    texts = {text for _, text in specs}
    if len(texts) != 1:
        raise SynfaceError("the parts were generated from different specs: " + ", ".join(str(p) for p, _ in specs))
    spec = read_spec(specs[0][0])
    with folder_lock(out, "the merged shards"):
        return _merge_locked(specs, spec, out)


def _merge_locked(specs: list[tuple[Path, str]], spec: DatasetSpec, out: Path) -> dict:
    prepare_output(out, spec)
    copied = 0
    intact = {k: shard_intact(out, k) for k in range(spec.num_shards)}  # damaged ones are copied again
    for part, _ in specs:
        if part.resolve() == out.resolve():
            continue
        for k in range(spec.num_shards):
            problem = shard_problem(part, k)
            if problem is not None and problem != NOT_WRITTEN:
                raise SynfaceError(f"{part}: shard {k} is damaged ({problem}); regenerate that part "
                                   f"(`synface generate` re-renders damaged shards) before merging")
            if problem is None and not intact[k]:
                _copy_shard(part, out, k)
                intact[k] = True
                copied += 1
            elif problem is None and read_marker(part, k) != read_marker(out, k):
                raise SynfaceError(f"shard {k} differs between {part} and {out}: parts of different runs?")
    missing = [k for k, ok in intact.items() if not ok]
    if not missing:
        finish_synthetic_dataset(out, spec)
    return {"copied": copied, "missing": missing, "complete": not missing, "num_shards": spec.num_shards}
