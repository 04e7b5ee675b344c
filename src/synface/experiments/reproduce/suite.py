"""``synface reproduce``: run studies at a scale, write their JSON, plots and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from synface.datasets.storage import ShardedDataset
from synface.experiments.reproduce import plots
from synface.experiments.reproduce.report import (
    load_results, render_reproduction, result_path, summarise_study, verdict_table,
)
from synface.experiments.reproduce.runner import Reproduction, class_embeddings, intra_spread, write_json_atomic
from synface.experiments.reproduce.studies import Study, load_study, study_names
from synface.imageio import write_contact_sheet
from synface.runtime import describe_host, host_info

MDS_CLASSES = 2  # per set in the Fig. 3 plot, as the paper
SPREAD_CLASSES = 50  # classes whose spread the intra_spread figure averages
SHEET_IDENTITIES, SHEET_SAMPLES = 2, 4


def reproduce(names: list[str] | None, scale: str, seeds: int | None = None, out: str | Path = "runs/reproduce",
              data: str | Path = "data/reproduce", reports: str | Path = "reports", workers: int = 2,
              progress: bool = True, command: str = "synface reproduce", gpus: int | None = None,
              readme: str | Path | None = None) -> list[dict]:
    """Run ``names`` (every study when empty) at ``scale``; write each study's
    ``reports/reproduction/<study>/<scale>.json`` and plots, then ``reports/reproduction.md``."""
    studies = [load_study(n) for n in (names or study_names())]
    reports = Path(reports)
    repro = Reproduction(scale, seeds, out, data, workers, progress, gpus)
    host = {**host_info(), "line": describe_host()}
    summaries = []
    for done in repro.run_studies(studies):
        study, jobs, results = done["study"], done["jobs"], done["results"]
        measures = study_measures(study, jobs, results, repro) if study.plot == "mds" else {}
        seeds_arg = f" --seeds {len(repro.seeds)}" if seeds is not None else ""
        summary = summarise_study(study, scale, jobs, results, measures,
                                  f"{command} {study.name} --scale {scale}{seeds_arg}", host)
        summary["plots"] = study_plots(study, summary, jobs, repro, reports)
        write_json_atomic(result_path(reports, study.name, scale), summary)
        write_report(reports, readme)  # after every study: a long reproduction shows what it has so far
        summaries.append(summary)
    return summaries


README_START, README_END = "<!-- reproduction verdicts: start -->", "<!-- reproduction verdicts: end -->"


def write_report(reports: str | Path, readme: str | Path | None = None) -> Path:
    """``reports/reproduction.md`` from the committed study JSON; runs nothing. With
    ``readme``, the `cpu` verdict table also replaces what stands between its markers."""
    reports = Path(reports)
    results = load_results(reports)
    missing = [s for s in study_names() if s not in {r["study"] for r in results if r["scale"] == "cpu"}]
    path = reports / "reproduction.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_reproduction(results, missing))
    if readme is not None:
        update_readme(Path(readme), results, missing)
    return path


def update_readme(readme: Path, results: list[dict], missing: list[str]) -> bool:
    """Put the `cpu` verdict table between the README's markers; False when it has none."""
    text = readme.read_text() if readme.is_file() else ""
    if README_START not in text or README_END not in text:
        return False
    table = verdict_table(results, "cpu")
    if missing:
        table += ["", "Not yet run at `cpu` scale: " + ", ".join(f"`{s}`" for s in missing) + "."]
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(head + README_START + "\n" + "\n".join(table) + "\n" + README_END + tail)
    return True


def study_measures(study: Study, jobs: list[dict], results: list[dict], repro: Reproduction) -> dict:
    """Fig. 3's figure per synthetic run and seed: the intra-class spread of its training
    data as the same seed's real-trained model sees it (first ``SPREAD_CLASSES`` classes)."""
    from synface.models.checkpoint import load_backbone

    measures = {}
    for seed in repro.seeds:
        embedder = _real_embedder(jobs, results, seed)
        if embedder is None:
            tqdm.write(f"{study.name}: no real-trained run of seed {seed}, so no intra-class spread")
            continue
        model, _ = load_backbone(embedder[0]["folder"] / "checkpoint.pt")
        size, precision = _input_size(embedder[0]), embedder[1]["precision"]
        for job in jobs:
            if job["seed"] == seed and job["run"].kind == "synthetic":
                emb, labels = class_embeddings(model, ShardedDataset(job["synthetic"]), SPREAD_CLASSES, size, precision)
                measures[(job["run"].name, seed)] = {"intra_spread": intra_spread(emb, labels)}
    return measures


def _real_embedder(jobs: list[dict], results: list[dict], seed: int):
    return next(((j, r) for j, r in zip(jobs, results) if j["seed"] == seed and j["run"].kind == "real"), None)


def _input_size(job: dict) -> tuple[int, int]:
    from synface.faces.templates import parse_size

    return parse_size(job["config"].input_size)


def study_plots(study: Study, summary: dict, jobs: list[dict], repro: Reproduction, reports: Path) -> list[str]:
    """The study's figure(s) and its data's contact sheet, beside its JSON; file names."""
    folder = result_path(reports, study.name, repro.scale).parent
    scale = repro.scale
    made = [plots.bars(summary, folder / f"{scale}.png").name]
    if study.plot == "attack":
        made.append(plots.attack(summary, folder / f"{scale}_attack.png").name)
    elif study.plot == "heatmap":
        made.append(plots.heatmap(summary, folder / f"{scale}_heatmap.png").name)
    elif study.plot == "mds":
        path = mds_plot(study, jobs, repro, folder / f"{scale}_mds.png")
        if path is not None:
            made.append(path.name)
    made.append(contact_sheet(jobs, folder / f"{scale}_data.png").name)
    return made


def mds_plot(study: Study, jobs: list[dict], repro: Reproduction, path: Path) -> Path | None:
    from synface.models.checkpoint import load_backbone

    seed = repro.seeds[0]
    real = next((j for j in jobs if j["seed"] == seed and j["run"].kind == "real"), None)
    if real is None:
        return None
    model, _ = load_backbone(real["folder"] / "checkpoint.pt")
    precision = json.loads((real["folder"] / "result.json").read_text())["precision"]
    points = {}
    for job in jobs:
        if job["seed"] == seed and job["run"].kind in ("synthetic", "real"):
            points[job["run"].name] = class_embeddings(model, ShardedDataset(job["train_data"]), MDS_CLASSES,
                                                       _input_size(real), precision)
    return plots.mds(points, path, f"{study.name}: {MDS_CLASSES} classes per set, embedded by {real['run'].name} "
                                   f"(seed {seed}), MDS of cosine distances")


def contact_sheet(jobs: list[dict], path: Path) -> Path:
    """The first identities of each distinct dataset of the first seed, half size."""
    rows, seen = [], set()
    first_seed = min(j["seed"] for j in jobs)
    for job in jobs:
        folder = job["train_data"]
        if job["seed"] != first_seed or folder in seen:
            continue
        seen.add(folder)
        ds = ShardedDataset(folder)
        labels = ds.soft_labels(np.arange(len(ds))).label.numpy()
        index = np.concatenate([np.flatnonzero(labels == c)[:SHEET_SAMPLES] for c in np.unique(labels)[:SHEET_IDENTITIES]])
        crops = ds.images(index)[:, ::2, ::2]
        rows.append((f"{job['run'].name}: {folder.name}", crops))
    return write_contact_sheet(rows, path)
