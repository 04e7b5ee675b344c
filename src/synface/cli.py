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


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
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
    benchmark: str = typer.Option("lfw", help="lfw, a folder with pairs.txt + images/, or a pairs CSV."),
    checkpoint: Optional[Path] = typer.Option(None, help="A synface checkpoint to score."),
    backbone: Optional[str] = typer.Option(None, help="Backbone name (with --random-init)."),
    random_init: bool = typer.Option(False, "--random-init", help="Score an untrained backbone (a floor)."),
    input_size: str = typer.Option("112x96", help="Crop size for --random-init."),
    grayscale: bool = typer.Option(False, "--grayscale", help="Score on gray images."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Add the mirrored crop's embedding."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Default: 32 on CPU, 256 on CUDA."),
    amp: bool = typer.Option(False, "--amp", help="Reduced precision (bf16 CPU / fp16 CUDA), ~2x faster."),
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
        if (checkpoint is None) == (not random_init):
            raise SynfaceError("give exactly one of --checkpoint PATH or --backbone NAME --random-init")
        if checkpoint is not None:
            model, spec = load_backbone(checkpoint, dev)
            size = tuple(spec["input_size"])
            name = spec["name"]
        else:
            if backbone is None:
                raise SynfaceError("--random-init needs --backbone NAME")
            torch.manual_seed(seed)
            size = parse_size(input_size)
            model, name = get_backbone(backbone, size), backbone
        result = evaluate_model(model, benchmark, size, grayscale, flip, batch_size, dev, amp=amp)
    except (SynfaceError, ValueError) as exc:
        _fail(exc)
    result.update(model=name, checkpoint=str(checkpoint) if checkpoint else None)
    print_result(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@app.command()
def preview(
    out: Path = typer.Option(Path("preview.png"), help="Output PNG."),
    identities: int = typer.Option(4, min=2, help="Identity rows."),
    per_group: int = typer.Option(3, min=1, help="Images per varied attribute."),
    seed: int = typer.Option(0),
    size: str = typer.Option("112x96"),
) -> None:
    """Grid of generated faces: rows of identities under varying pose / expression / light,
    and an identity-mixup row φ = 0 → 1."""
    from synface.faces.templates import parse_size
    from synface.generate.generator import FaceGenerator, GeneratorConfig
    from synface.generate.preview import preview_grid
    from synface.imageio import write_image

    try:
        generator = FaceGenerator(GeneratorConfig(size=parse_size(size), seed=seed))
        grid = preview_grid(generator, identities, per_group, mixup_steps=1 + 3 * per_group)
    except (SynfaceError, ValueError) as exc:
        _fail(exc)
    write_image(out, grid)
    console.print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]})")


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


def main() -> None:
    from synface.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    app()


if __name__ == "__main__":
    main()
