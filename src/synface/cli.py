"""The ``synface`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from synface.errors import SynfaceError

app = typer.Typer(
    help="Train and evaluate face recognisers on synthetic faces (SynFace).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _escape(text: str) -> str:
    """User text (paths, messages) printed through rich: brackets are text, not markup."""
    from rich.markup import escape

    return escape(text)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {_escape(str(exc))}")
    raise typer.Exit(code=2)


@app.command()
def align(
    src: Path = typer.Argument(..., help="Folder tree of raw images."),
    dst: Path = typer.Argument(..., help="Output folder for aligned crops (same tree, PNG)."),
    size: str = typer.Option("112x96", help="Crop HEIGHTxWIDTH: 112x96, 112x112 or smaller."),
    landmarks: Optional[Path] = typer.Option(
        None, help="5-point landmark file; default: landmarks.txt / lfw_landmark.txt in SRC or its parent."
    ),
    grayscale: bool = typer.Option(False, "--grayscale", help="Convert to gray (3 equal channels)."),
    device: str = typer.Option("auto", help="Device for MTCNN: auto, cpu, cuda, cuda:1 ..."),
) -> None:
    """Detect (or look up) 5 landmarks and write similarity-aligned crops."""
    from synface.faces.pipeline import align_folder
    from synface.runtime import resolve_device

    try:
        report = align_folder(src, dst, size, landmarks, grayscale, device=str(resolve_device(device)))
    except SynfaceError as exc:
        _fail(exc)
    table = Table(title=f"aligned {src} -> {dst}")
    table.add_column("landmarks from")
    table.add_column("images", justify="right")
    for source, count in sorted(report.counts.items()):
        table.add_row(source, str(count))
    Console().print(table)
    for path, reason in report.skipped[:20]:
        console.print(f"skipped {path}: {reason}")
    if len(report.skipped) > 20:
        console.print(f"... and {len(report.skipped) - 20} more, listed in {dst / 'skipped.txt'}")


@app.command()
def evaluate(
    benchmark: str = typer.Option("lfw", help="lfw, a folder with pairs.txt + images/, a pairs CSV or an "
                                              "insightface .bin; several, comma-separated, print their average."),
    checkpoint: Optional[Path] = typer.Option(None, help="A synface checkpoint to score."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="An ONNX model (from `synface export-model`) to score."),
    backbone: Optional[str] = typer.Option(None, help="Backbone name (with --random-init)."),
    random_init: bool = typer.Option(False, "--random-init", help="Score an untrained backbone (a floor)."),
    input_size: str = typer.Option("112x96", help="Crop size for --random-init."),
    grayscale: bool = typer.Option(False, "--grayscale", help="Score on gray images."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Add the mirrored crop's embedding."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Default: 32 on CPU, 256 on CUDA."),
    precision: str = typer.Option("auto", help="auto (bf16 only on CPUs with native bf16, fp16 on CUDA), fp32, bf16 or fp16."),
    amp: bool = typer.Option(False, "--amp", help="Reduced precision of the device's usual kind (bf16 CPU / fp16 CUDA), "
                                                  "even where it is emulated; same as --precision bf16 on CPU."),
    device: str = typer.Option("auto"),
    seed: int = typer.Option(0, help="Seed for --random-init weights."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result record here."),
) -> None:
    """Verification accuracy (k-fold), AUC and TAR@FAR of a model on a pair benchmark."""
    import torch

    from synface.evaluate.benchmark import evaluate_model
    from synface.faces.templates import parse_size
    from synface.models import get_backbone
    from synface.models.checkpoint import load_backbone
    from synface.runtime import resolve_device

    try:
        dev = resolve_device(device)
        if sum((checkpoint is not None, onnx is not None, random_init)) != 1:
            raise SynfaceError("give exactly one of --checkpoint PATH, --onnx PATH or --backbone NAME --random-init")
        options = {"amp": True if amp else precision}
        if onnx is not None:
            from synface.models.onnx import OnnxBackbone

            model = OnnxBackbone(onnx)
            size, name = model.input_size, model.name
            # onnxruntime runs the graph as exported: fp32, no torch.compile, no layout change
            options = {"amp": "fp32", "compile": False, "channels_last": False}
            dev = torch.device("cpu")
        elif checkpoint is not None:
            model, spec = load_backbone(checkpoint, dev)
            size = tuple(spec["input_size"])
            name = spec["name"]
        else:
            if backbone is None:
                raise SynfaceError("--random-init needs --backbone NAME")
            torch.manual_seed(seed)
            size = parse_size(input_size)
            model, name = get_backbone(backbone, size), backbone
        names = [b.strip() for b in benchmark.split(",") if b.strip()]
        from synface.evaluate.pairs import load_benchmark

        benches = [load_benchmark(b) for b in names]  # every set read before any is scored
        results = [evaluate_model(model, bench, size, grayscale, flip, batch_size, dev, **options) for bench in benches]
    except (SynfaceError, ValueError) as exc:
        _fail(exc)
    for result in results:
        result.update(model=name, checkpoint=str(checkpoint) if checkpoint else None, onnx=str(onnx) if onnx else None)
    console.print(f"precision {results[0]['precision']}: {results[0]['runtime']['reasons']['precision']}")
    if len(results) == 1:
        record = results[0]
        print_result(record)
    else:
        record = {"benchmarks": results, "average_accuracy": sum(r["accuracy_mean"] for r in results) / len(results)}
        print_results(results, record["average_accuracy"])
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(record, indent=2) + "\n")


@app.command("export-model")
def export_model(
    checkpoint: Path = typer.Option(..., help="A synface checkpoint."),
    out: Path = typer.Option(..., help="The ONNX file to write (dynamic batch)."),
) -> None:
    """Export a checkpoint's backbone to ONNX and check it against PyTorch with onnxruntime."""
    from synface.models.onnx import export_onnx

    try:
        report = export_onnx(checkpoint, out)
    except SynfaceError as exc:
        _fail(exc)
    console.print(f"wrote {_escape(str(out))}: {report['backbone']} at {report['input_size'][0]}x{report['input_size'][1]}, "
                  f"opset {report['opset']}; onnxruntime vs PyTorch on {report['checked_batch']} crops: "
                  f"max |diff| {report['max_abs_diff']:.2e}, min cosine {report['min_cosine']:.6f}")


@app.command()
def preview(
    out: Path = typer.Option(Path("preview.png"), help="Output PNG."),
    identities: int = typer.Option(4, min=2, help="Identity rows."),
    per_group: int = typer.Option(3, min=1, help="Images per varied attribute."),
    seed: int = typer.Option(0),
    size: str = typer.Option("112x96"),
    appearance: Optional[str] = typer.Option(None, help="Albedo model: procedural, learned or both (default: the generator's)."),
) -> None:
    """Grid of generated faces: rows of identities under varying pose / expression / light,
    and an identity-mixup row φ = 0 → 1."""
    from synface.faces.templates import parse_size
    from synface.generate.generator import FaceGenerator, GeneratorConfig
    from synface.generate.preview import preview_grid
    from synface.imageio import write_image

    try:
        config = GeneratorConfig(size=parse_size(size), seed=seed)
        config.appearance = appearance or config.appearance
        generator = FaceGenerator(config)
        grid = preview_grid(generator, identities, per_group, mixup_steps=1 + 3 * per_group)
    except (SynfaceError, ValueError) as exc:
        _fail(exc)
    write_image(out, grid)
    console.print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]})")


# ---- datasets ------------------------------------------------------------------------------


@app.command()
def generate(
    spec: str = typer.Argument(..., help="A dataset spec: a name under configs/datasets/ or a YAML path."),
    out: Path = typer.Option(..., help="Dataset directory (created; resumed if it holds a partial run)."),
    workers: int = typer.Option(1, min=1, help="Processes; each renders whole shards."),
    shard: Optional[str] = typer.Option(None, help="i/N: make only shards k with k % N == i (split across machines)."),
    scale: Optional[float] = typer.Option(None, help="Multiply every identity count (CPU-sized versions of a spec)."),
    width: Optional[int] = typer.Option(None, min=1, help="Total identities (groups keep their proportions)."),
    depth: Optional[int] = typer.Option(None, min=1, help="Images per identity (balanced specs)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Keep finished shards of an earlier run."),
    ray: bool = typer.Option(False, "--ray", help="One Ray task per shard (a local cluster unless --ray-address)."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster to join: auto (the running one) or an address; "
                                                        "--out must be on a filesystem every node shares."),
    validation_identities: int = typer.Option(100, min=0, help="Held-out people of the validation split "
                                                               "OUT/validation (0: none)."),
    validation_samples: int = typer.Option(4, min=1, help="Images per held-out person."),
) -> None:
    """Generate a synthetic dataset: sharded, resumable, identical bytes whatever the split;
    with it, a held-out validation split that training opens (never LFW)."""
    from synface.datasets.build import ShardSelection, generate_dataset, generate_validation_split
    from synface.datasets.spec import load_spec, resolve_spec

    try:
        resolved = resolve_spec(load_spec(spec), scale=scale, width=width, depth=depth)
        console.print(
            f"{resolved.name}: {resolved.num_identities} identities, {resolved.num_images} images, "
            f"{resolved.num_shards} shards, mixup {resolved.mixup}, varying {', '.join(resolved.sampler.vary) or 'nothing'}"
        )
        address = (ray_address or "local") if ray or ray_address else None
        summary = generate_dataset(resolved, out, workers=workers, shards=ShardSelection.parse(shard), resume=resume,
                                   ray_address=address)
        if summary["complete"]:
            generate_validation_split(out, validation_identities, validation_samples, progress=True)
    except SynfaceError as exc:
        _fail(exc)
    state = "complete" if summary["complete"] else "partial (other shards still missing; see `synface merge`)"
    repaired = f" ({summary['repaired']} of them damaged and made again)" if summary["repaired"] else ""
    console.print(f"{out}: made {summary['made']} shard(s){repaired}, kept {summary['skipped']}; dataset {state}")


@app.command()
def merge(
    parts: list[Path] = typer.Argument(..., help="Dataset directories made with --shard i/N."),
    out: Path = typer.Option(..., help="Merged dataset directory."),
) -> None:
    """Merge shards generated on different machines into one dataset (and its validation split)."""
    from synface.datasets.build import generate_validation_split, merge_datasets

    try:
        summary = merge_datasets(parts, out)
        if summary["complete"]:
            generate_validation_split(out, progress=True)
    except SynfaceError as exc:
        _fail(exc)
    if summary["complete"]:
        console.print(f"{out}: complete, {summary['num_shards']} shards ({summary['copied']} copied)")
    else:
        console.print(f"{out}: still missing shards {summary['missing'][:20]}")
        raise typer.Exit(code=1)


@app.command("validation-split")
def validation_split(
    dataset: Path = typer.Argument(..., help="A synface dataset (synthetic, or imported real faces)."),
    identities: int = typer.Option(100, min=2, help="Held-out people."),
    samples: int = typer.Option(4, min=1, help="Images per person."),
) -> None:
    """Write DATASET/validation: held-out synthetic people, rendered like DATASET (the default
    generator for real data), that `synface train` validates on."""
    from synface.datasets.build import generate_validation_split

    try:
        folder = generate_validation_split(dataset, identities, samples, progress=True)
    except SynfaceError as exc:
        _fail(exc)
    console.print(f"{folder}: {identities} x {samples} held-out synthetic faces")


@app.command("syn-lfw")
def syn_lfw(
    out: Path = typer.Option(..., help="Output folder (LFW layout: images/, pairs.txt, landmarks.txt)."),
    ratio: Optional[float] = typer.Option(None, help="Syn-LFW-R: mix each identity with another at ratio R."),
    lfw: Optional[Path] = typer.Option(None, help="LFW folder to mirror; default $SYNFACE_DATA/lfw."),
    seed: int = typer.Option(0),
    size: str = typer.Option("112x96"),
) -> None:
    """Syn-LFW: LFW's pairs with synthetic people in LFW's poses and light (resumable)."""
    from synface.datasets.syn_lfw import SynLfwConfig, build_syn_lfw
    from synface.paths import data_path

    try:
        info = build_syn_lfw(out, lfw or data_path("lfw"), SynLfwConfig(ratio=ratio, seed=seed, size=size))
    except SynfaceError as exc:
        _fail(exc)
    console.print(f"{out}: {info['people']} people, {info['images']} images; evaluate with --benchmark {out}")


@app.command("import-real")
def import_real(
    src: Path = typer.Argument(..., help="Identity folders <person>/<image> (e.g. celeba-299), or an "
                                         "insightface folder (train.rec + train.idx)."),
    out: Path = typer.Option(..., help="Dataset directory to write."),
    size: str = typer.Option("112x96"),
    grayscale: bool = typer.Option(False, "--grayscale"),
    max_identities: Optional[int] = typer.Option(None, min=1, help="Keep the first N people (sorted)."),
    max_per_identity: Optional[int] = typer.Option(None, min=1, help="Keep each person's first S images."),
    min_images: int = typer.Option(1, min=1, help="Leave out people with fewer images."),
) -> None:
    """Align a real identity-folder dataset into the same storage format as synthetic data."""
    from synface.datasets.real import import_identity_folder

    try:
        info = import_identity_folder(src, out, size, grayscale, min_images, max_identities, max_per_identity)
    except SynfaceError as exc:
        _fail(exc)
    console.print(f"{out}: {info['num_images']} images of {info['num_classes']} people (alignment: {info['alignment']})")


@app.command()
def export(
    dataset: Path = typer.Argument(..., help="A synface dataset directory."),
    out: Path = typer.Option(..., help="Output folder."),
    format: str = typer.Option("imagefolder", help="imagefolder: <class>/<index>.png; insightface: train.rec, "
                                                    "train.idx, property (arcface_torch's MXFaceDataset)."),
    image_format: str = typer.Option("jpg", help="insightface: jpg (quality 95, as insightface's sets) or png."),
) -> None:
    """Write a dataset for other tools: image folders, or insightface's RecordIO training set."""
    from synface.datasets.recordio import export_insightface
    from synface.datasets.stats import export_imagefolder
    from synface.datasets.storage import ShardedDataset

    if format not in ("imagefolder", "insightface"):
        _fail(SynfaceError(f"unknown export format {format!r}; known: imagefolder, insightface"))
    try:
        ds = ShardedDataset(dataset)
        count = export_imagefolder(ds, out) if format == "imagefolder" else export_insightface(ds, out, image_format)["images"]
    except SynfaceError as exc:
        _fail(exc)
    console.print(f"wrote {count} images under {_escape(str(out))}")


@app.command()
def verify(dataset: Path = typer.Argument(..., help="A synface dataset directory (finished or partial).")) -> None:
    """Check every shard against the sizes and CRC-32s its marker records; exit 1 when any is
    damaged (``synface generate`` with the same spec and --out re-renders exactly those)."""
    try:
        report = _verified(dataset)
    except SynfaceError as exc:
        _fail(exc)
    state = "complete" if report["complete"] else "unfinished"
    console.print(f"{_escape(str(dataset))}: {report['shards']} shards checked, none damaged ({state})")


def _verified(dataset: Path) -> dict:
    """verify_dataset, failing with the list of damaged shards."""
    from synface.datasets.storage import verify_dataset

    report = verify_dataset(dataset)
    if report["damaged"]:
        lines = [f"shard {k}: {why}" for k, why in report["damaged"][:20]]
        more = len(report["damaged"]) - len(lines)
        raise SynfaceError(f"{dataset}: {len(report['damaged'])} of {report['shards']} shards damaged:\n  "
                           + "\n  ".join(lines) + (f"\n  ... and {more} more" if more > 0 else "")
                           + "\nre-render them with `synface generate` (same spec and --out)")
    return report


@app.command()
def stats(
    dataset: Path = typer.Argument(..., help="A synface dataset directory."),
    out: Optional[Path] = typer.Option(None, help="Folder for stats.json, distributions.png, contact_sheet.png "
                                                  "(default DATASET/../<name>-stats)."),
) -> None:
    """Identities, images per identity, per-factor distributions, mixup ratios, a contact sheet."""
    from synface.datasets.stats import contact_sheet, dataset_stats, plot_stats
    from synface.datasets.storage import ShardedDataset

    try:
        _verified(dataset)
        ds = ShardedDataset(dataset)
    except SynfaceError as exc:
        _fail(exc)
    out = out or dataset.parent / f"{dataset.name}-stats"
    out.mkdir(parents=True, exist_ok=True)
    summary = dataset_stats(ds)
    (out / "stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_stats(ds, out / "distributions.png")
    contact_sheet(ds, out / "contact_sheet.png")
    table = Table(title=f"{summary['name']} ({summary['kind']})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    per = summary["images_per_identity"]
    table.add_row("images", str(summary["images"]))
    table.add_row("identities", str(summary["identities"]))
    table.add_row("images / identity", f"{per['mean']:.1f} ± {per['std']:.1f} (min {per['min']}, max {per['max']})")
    table.add_row("mixed images", str(summary["mixup"]["mixed_images"]))
    for name, s in summary.get("factors", {}).items():
        table.add_row(name, f"{s['mean']:.2f} ± {s['std']:.2f} [{s['p05']:.1f}, {s['p95']:.1f}]")
    Console().print(table)
    console.print(f"wrote {out}/stats.json, distributions.png, contact_sheet.png")


# ---- training ------------------------------------------------------------------------------


def parse_overrides(items: list[str]) -> dict:
    """``key.sub=value`` pairs; values are YAML (numbers, lists, true/false)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SynfaceError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def train(
    config: str = typer.Argument(..., help="Training preset (paper, cpu) or a YAML path."),
    data: Path = typer.Option(..., help="Training dataset (synthetic, or real for real-only runs)."),
    out: Path = typer.Option(..., help="Run folder: checkpoint.pt, metrics.csv/json, loss.png, config.yaml."),
    real: Optional[Path] = typer.Option(None, help="Real dataset for domain mixup (from `synface import-real`)."),
    validation: Optional[Path] = typer.Option(None, help="Held-out split to validate on; default DATA/validation "
                                                         "(`synface generate` writes it)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run OUT holds (else it is refused)."),
    device: str = typer.Option("auto"),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set optim.epochs=5."),
) -> None:
    """Train a recogniser with the margin softmax (identity-mixup soft labels, domain mixup).

    Several processes or GPUs: ``torchrun --nproc_per_node N -m synface.cli train ...``."""
    from synface.train.config import load_train_config
    from synface.train.loop import Trainer

    try:
        if resume and overwrite:
            raise SynfaceError("--resume and --overwrite exclude each other")
        cfg = load_train_config(config, parse_overrides(set_))
        trainer = Trainer(cfg, data, out, real=real, device=device, validation=validation)
        summary = trainer.run(resume=resume, overwrite=overwrite)
        trainer.close()
    except SynfaceError as exc:
        _fail(exc)
    if trainer.dist.is_main:
        val = summary["val_accuracy"]
        if summary["stopped_by_time_budget"]:
            console.print(f"[bold yellow]stopped by the time budget after {summary['steps']} of "
                          f"{summary['planned_steps']} planned steps[/] (resume with --resume)")
        console.print(
            f"{out}: {summary['steps']} steps ({summary['epochs']:.2f} epochs), loss {summary['final_loss']:.3f}, "
            f"synthetic validation {'-' if val is None else f'{100 * val:.2f} %'}, {summary['train_img_per_s']:.0f} img/s"
        )


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Report folder: report.md, metrics.json, checkpoint.pt."),
    data: Path = typer.Option(Path("data/demo"), help="Where the generated training set goes."),
    workers: int = typer.Option(2, min=1),
) -> None:
    """The main job end to end: generate, train the cpu preset, evaluate, report (<= 15 min)."""
    from synface.experiments.demo import run_demo

    try:
        metrics = run_demo(out, data, workers)
    except SynfaceError as exc:
        _fail(exc)
    acc, t = metrics["lfw_accuracy"], metrics["training"]
    if t["stopped_by_time_budget"]:
        console.print(f"[bold yellow]stopped by the time budget after {t['steps']} of {t['planned_steps']} planned "
                      "steps: the model is not fully trained[/]")
    console.print(f"LFW accuracy {'n/a' if acc is None else f'{100 * acc:.2f} %'} after {t['steps']} training steps "
                  f"({metrics['runtime']['precision']}); report: {out / 'report.md'}")


appearance_app = typer.Typer(help="The learned appearance basis (real photos -> UV textures -> PCA).",
                              no_args_is_help=True)
app.add_typer(appearance_app, name="appearance")


@appearance_app.command("build")
def appearance_build(
    real: Path = typer.Option(..., help="Real faces: <identity>/<image> folders and a 5-point landmarks.txt."),
    out: Optional[Path] = typer.Option(None, help="Output basis (.npz); default: the generator's, cache/appearance/celeba-299[-FIT].npz."),
    components: Optional[int] = typer.Option(None, min=1, help="PCA components over identities (default: all)."),
    residual_components: int = typer.Option(20, min=1, help="PCA components over within-person residuals."),
    max_identities: Optional[int] = typer.Option(None, min=3, help="Use only the first N identities."),
    fit: str = typer.Option("landmarks5", help="Unwrap onto the mean face posed by the 5 landmarks (landmarks5) or "
                                               "each person's own shape fitted to dlib's 68 points (landmarks68)."),
) -> None:
    """Fit the face model to each real image, unwrap its pixels into the UV atlas, remove the
    fitted shading, average per identity and build a PCA basis (facemodel/basis_builder.py)."""
    from synface.facemodel.basis import default_basis_path
    from synface.facemodel.basis_builder import build_learned_appearance

    try:
        out = out or default_basis_path(fit)
        report = build_learned_appearance(real, out, components=components, residual_components=residual_components,
                                          max_identities=max_identities, fit=fit)
    except SynfaceError as exc:
        _fail(exc)
    for path, why in report.skipped[:20]:
        console.print(f"skipped {path}: {why}")
    console.print(
        f"wrote {out}: {report.identities} identities from {report.used} of {report.images} images "
        f"({len(report.skipped)} unreadable, {report.bad_fits} bad pose fits); {report.components} components "
        f"explain {100 * report.explained:.1f} % of the identity variance"
    )


@appearance_app.command("scenes")
def appearance_scenes(
    real: Path = typer.Option(..., help="Real faces: <identity>/<image> folders and a 5-point landmarks.txt."),
    out: Optional[Path] = typer.Option(None, help="Output (.npz); default: the generator's, cache/scenes/celeba-299.npz."),
    max_identities: Optional[int] = typer.Option(None, min=1, help="Use only the first N identities."),
) -> None:
    """Fit head pose and SH light to each real photo (facemodel/scenes.py): what the generator's
    photo light (sampler.illumination_prior=photos) draws from; prints the pose spread."""
    from synface.facemodel.scenes import build_photo_scenes, default_scenes_path

    out = out or default_scenes_path()
    try:
        summary = build_photo_scenes(real, out, max_identities=max_identities)
    except SynfaceError as exc:
        _fail(exc)
    table = Table(title=f"head pose of {summary['fitted']} of {summary['photos']} photos (degrees)")
    for column in ("angle", "std", "robust std", "|angle| p90"):
        table.add_column(column, justify="right")
    for angle, s in summary["pose_spread"].items():
        table.add_row(angle, f"{s['std']:.1f}", f"{s['robust_std']:.1f}", f"{s['abs_p90']:.1f}")
    Console().print(table)
    console.print(f"wrote {out}")


refiner_app = typer.Typer(help="A learned realism refiner for renders (SimGAN; generate/refiner.py).",
                          no_args_is_help=True)
app.add_typer(refiner_app, name="refiner")


@refiner_app.command("train")
def refiner_train(
    out: Optional[Path] = typer.Option(None, help="Output weights (.pt); default cache/refiner/celeba-299.pt."),
    real: Optional[Path] = typer.Option(None, help="Real faces: <identity>/<image> folders and a 5-point "
                                                   "landmarks.txt (default $SYNFACE_DATA/celeba-299). Never LFW."),
    steps: Optional[int] = typer.Option(None, min=1, help="Training steps (default 1000)."),
    batch: Optional[int] = typer.Option(None, min=2, help="Renders and photos per step (default 32)."),
    images: Optional[int] = typer.Option(None, min=2, help="Renders to train on, 2 per person from their own seed "
                                                            "namespace (default 4000)."),
    channels: Optional[int] = typer.Option(None, min=1, help="Refiner width (default 16)."),
    blocks: Optional[int] = typer.Option(None, min=1, help="Residual blocks (default 3)."),
    regularisation: Optional[float] = typer.Option(None, min=0.0, help="Weight of mean |refined - render| "
                                                                        "(default 1.0)."),
    seed: int = typer.Option(0),
    size: str = typer.Option("112x96", help="Crop size HxW (the datasets' size)."),
    sheet: Optional[Path] = typer.Option(None, help="Contact sheet PNG (default: beside the weights)."),
) -> None:
    """Train a refiner that makes renders look like aligned real photos to a local
    discriminator while staying close to the render; use it with a spec's `refiner: PATH`.
    Resumable: a killed run picks up its last checkpoint."""
    from synface.faces.templates import parse_size
    from synface.generate.generator import GeneratorConfig, ensure_generator_inputs
    from synface.generate.refiner import RefinerConfig, build_refiner, default_refiner_path

    out = out or default_refiner_path()
    try:
        given = dict(channels=channels, blocks=blocks, steps=steps, batch=batch, regularisation=regularisation,
                     synthetic_images=images)
        config = RefinerConfig(seed=seed, **{k: v for k, v in given.items() if v is not None})
        generator = GeneratorConfig(size=parse_size(size), seed=seed)
        ensure_generator_inputs(generator)
        report, sheet = build_refiner(out, config, generator, real, sheet)
    except (SynfaceError, ValueError) as exc:
        _fail(exc)
    console.print(f"wrote {out} ({report.steps} steps, {report.seconds:.0f} s; last 10 %: discriminator loss "
                  f"{report.discriminator_loss:.3f}, adversarial {report.adversarial_loss:.3f}, mean change "
                  f"{report.mean_change:.1f} levels); sheet: {sheet}")


@appearance_app.command("ab")
def appearance_ab(
    out: Path = typer.Option(Path("runs/appearance_ab"), help="Run folders (one per mode and seed)."),
    data: Path = typer.Option(Path("data/appearance_ab"), help="Generated datasets."),
    report: Path = typer.Option(Path("reports/appearance_ab.md"), help="Markdown report."),
    modes: str = typer.Option("procedural,learned,both", help="Comma-separated appearance modes."),
    seeds: str = typer.Option("0,1", help="Comma-separated seeds (generator and training)."),
    workers: int = typer.Option(2, min=1),
) -> None:
    """A/B training of the appearance modes at equal budget: LFW accuracy per mode and seed."""
    from synface.experiments.appearance_ab import run_appearance_ab

    try:
        summary = run_appearance_ab(out, data, report, tuple(m.strip() for m in modes.split(",")),
                                    tuple(int(x) for x in seeds.split(",")), workers=workers)
    except (SynfaceError, ValueError) as exc:
        _fail(exc)
    console.print(f"best appearance by LFW accuracy: {summary['best']}; report: {report}")


@app.command("ab")
def ab(
    levers: Optional[list[str]] = typer.Argument(None, help="Levers: names under configs/ab/ or YAML paths (baseline first)."),
    seeds: str = typer.Option("0,1", help="Comma-separated seeds (generator and training)."),
    out: Path = typer.Option(Path("runs/ab"), help="Run folders (one per lever and seed)."),
    data: Path = typer.Option(Path("data/ab"), help="Generated datasets (shared by levers with the same spec)."),
    report: Path = typer.Option(Path("reports/transfer"), help="Report stem: writes STEM.json and STEM.md."),
    default: Optional[str] = typer.Option(None, help="The lever today's defaults equal (marked in the report)."),
    workers: int = typer.Option(2, min=1),
    sheet: Optional[Path] = typer.Option(None, help="Only draw a PNG: a row of the same faces per generator lever."),
    render: bool = typer.Option(False, "--render", help="Only re-render STEM.md (and real_baseline.md) from STEM.json "
                                "(with --default: first name the row today's defaults equal)."),
    evidence: Optional[Path] = typer.Option(None, help="With --render --default: the stem of the A/B report (often "
                                            "of more seeds) that chose the default; the report quotes it."),
    gpu_row: Optional[list[Path]] = typer.Option(None, "--gpu-row", help="Only add the GPU-scale row to STEM.json from "
                                                 "benchmarks/gpu_scale.sh's records: one seed<k> folder per seed."),
) -> None:
    """Controlled A/B of generator / training options at the demo budget: LFW per lever and seed."""
    from synface.experiments.ab import add_gpu_row, lever_sheet, load_lever, rerender, run_ab

    try:
        if gpu_row:
            row = add_gpu_row(report, gpu_row)
            console.print(f"{row['lever']} (gpu): LFW {100 * row['lfw_mean']:.2f} %; report: {report.with_suffix('.md')}")
            return
        if evidence is not None and not render:
            raise typer.BadParameter("--evidence goes with --render --default", param_hint="--evidence")
        if render:
            rerender(report, default, None if evidence is None else str(evidence))
            console.print(f"report: {report.with_suffix('.md')}")
            return
        if not levers:
            raise typer.BadParameter("name at least one lever (or pass --render)", param_hint="LEVERS")
        loaded = [load_lever(name) for name in levers]
        if sheet is not None:
            console.print(f"wrote {lever_sheet(loaded, sheet)}")
            return
        summary = run_ab(loaded, tuple(int(x) for x in seeds.split(",")), out, data, report, default,
                         workers=workers, command="synface ab")
    except (SynfaceError, ValueError) as exc:
        _fail(exc)
    for row in summary["rows"]:
        mean, std = row["lfw_mean"], row["lfw_std"]
        console.print(f"{row['lever']}: LFW {'n/a' if mean is None else f'{100 * mean:.2f}'} ± "
                      f"{'n/a' if std is None else f'{100 * std:.2f}'} %")
    console.print(f"report: {report.with_suffix('.md')}")


@app.command()
def reproduce(
    studies: list[str] = typer.Argument(None, help="Studies to run (default: all), or `report` alone to render "
                                                   "reports/reproduction.md from the committed results."),
    scale: str = typer.Option("cpu", help="smoke (minutes; tests), cpu (2 cores: <= 45 min a study), paper (GPUs)."),
    seeds: Optional[int] = typer.Option(None, min=1, help="Seeds per run (default: the scale's: smoke 1, cpu 2, paper 1)."),
    out: Path = typer.Option(Path("runs/reproduce"), help="Run folders (one per run and seed, shared by studies)."),
    data: Path = typer.Option(Path("data/reproduce"), help="Generated and imported datasets, Syn-LFW."),
    reports: Path = typer.Option(Path("reports"), help="Where reproduction/<study>/<scale>.json and reproduction.md go."),
    workers: int = typer.Option(2, min=1, help="Rendering processes."),
    gpus: Optional[int] = typer.Option(None, min=1, help="Training processes per run, under torchrun when > 1 "
                                                         "(default: every visible GPU at paper scale, else 1)."),
) -> None:
    """The paper's tables and figures as studies: train, score, and judge every claim (resumable)."""
    from synface.experiments.reproduce import reproduce as run_reproduction, write_report
    from synface.experiments.reproduce.studies import study_names

    studies = list(studies or [])
    try:
        # The README's verdict table follows the committed report (when run from the checkout).
        readme = Path("README.md") if Path("README.md").is_file() and reports == Path("reports") else None
        if studies == ["report"]:
            console.print(f"wrote {write_report(reports, readme)}")
            return
        if "report" in studies:
            raise SynfaceError("`report` renders the report alone; run it without study names")
        summaries = run_reproduction(studies, scale, seeds, out, data, reports, workers, gpus=gpus, readme=readme)
    except SynfaceError as exc:
        _fail(exc)
    for summary in summaries:
        for claim in summary["claims"]:
            console.print(f"{summary['study']}: {_escape(claim['text'])}: [bold]{claim['verdict']}[/]")
    console.print(f"report: {reports / 'reproduction.md'} (studies: {', '.join(study_names())})")


def print_result(result: dict) -> None:
    table = Table(title=f"{result['benchmark']}: {result['pairs']} pairs, {result['folds']} folds")
    for col in ("model", "accuracy", "AUC", "TAR@FAR=1e-3", "TAR@FAR=1e-2", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        str(result.get("model", "")),
        f"{100 * result['accuracy_mean']:.2f} ± {100 * result['accuracy_std']:.2f} %",
        f"{result['auc']:.4f}",
        f"{100 * result['tar_at_far_1e-3']:.2f} %",
        f"{100 * result['tar_at_far_1e-2']:.2f} %",
        f"{result['seconds']:.1f}",
    )
    Console().print(table)


def print_results(results: list[dict], average: float) -> None:
    """One row per benchmark and their mean accuracy, as papers report insightface's sets."""
    table = Table(title=f"{len(results)} benchmarks")
    for col in ("benchmark", "pairs", "accuracy", "AUC", "TAR@FAR=1e-3"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r["benchmark"], str(r["pairs"]), f"{100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} %",
                      f"{r['auc']:.4f}", f"{100 * r['tar_at_far_1e-3']:.2f} %")
    table.add_row("average", "", f"{100 * average:.2f} %", "", "")
    Console().print(table)


def main() -> None:
    from synface.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    app()


if __name__ == "__main__":
    main()
