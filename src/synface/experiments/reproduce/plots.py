"""The studies' figures: bars against the paper, the attack curve, the width x depth heat
map and the MDS of class embeddings (Fig. 3)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from synface.experiments.reproduce.studies import MEASURES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def bars(summary: dict, path: Path) -> Path:
    """Ours (mean ± std over seeds) against the paper's figure, per run and benchmark."""
    plt = _pyplot()
    benchmarks = [b for b in summary["benchmarks"] if b not in MEASURES]
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(max(5, 0.9 * len(summary["rows"])) * len(benchmarks), 3.6),
                             squeeze=False)
    for ax, bench in zip(axes[0], benchmarks):
        rows = [r for r in summary["rows"] if bench in r["mean"]]
        x = np.arange(len(rows))
        means = [100 * r["mean"][bench] for r in rows]
        stds = [100 * (r["std"][bench] or 0) for r in rows]
        ax.bar(x, means, yerr=stds, capsize=3, color="#4c72b0", label="ours (mean ± std)")
        paper = [(i, r["paper"][bench]) for i, r in enumerate(rows) if bench in r["paper"]]
        if paper:
            ax.scatter([i for i, _ in paper], [v for _, v in paper], marker="x", color="#c44e52", zorder=3,
                       label="paper")
        ax.set_xticks(x, [r["name"] for r in rows], rotation=35, ha="right", fontsize=8)
        low = min(means + [v for _, v in paper] + [50.0])
        ax.set_ylim(max(0, low - 5), 100)
        ax.set_ylabel(f"{bench} accuracy (%)")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{summary['study']} ({summary['paper']}), {summary['scale']} scale", fontsize=10)
    return _save(fig, path)


def attack(summary: dict, path: Path) -> Path:
    """Accuracy against the attack ratio R (Syn-LFW at R = 1), a line per model (Fig. 5)."""
    plt = _pyplot()

    def ratio(bench: str) -> float:
        return 1.0 if bench == "syn-lfw" else float(bench.rsplit("-", 1)[1])

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for row in summary["rows"]:
        benches = sorted((b for b in row["mean"] if b.startswith("syn-lfw")), key=ratio, reverse=True)
        r = [ratio(b) for b in benches]
        ax.errorbar(r, [100 * row["mean"][b] for b in benches], yerr=[100 * (row["std"][b] or 0) for b in benches],
                    marker="o", capsize=3, label=f"{row['name']} (ours)")
        paper = [(ratio(b), v) for b, v in row["paper"].items() if b.startswith("syn-lfw")]
        if paper:
            ax.scatter(*zip(*paper), marker="x", s=50, zorder=3, label=f"{row['name']} (paper)")
    ax.set_xlabel("R: weight of the true identity (1 = Syn-LFW)")
    ax.set_ylabel("verification accuracy (%)")
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    ax.set_title(f"mixup attack (Fig. 5), {summary['scale']} scale", fontsize=10)
    return _save(fig, path)


def heatmap(summary: dict, path: Path) -> Path:
    """LFW accuracy over the paper's width x depth labels, without and with identity mixup."""
    plt = _pyplot()
    cells = {}
    for row in summary["rows"]:
        match = re.fullmatch(r"(\d+K)_(\d+)(_IM)?", row["name"])
        if match and "lfw" in row["mean"]:
            cells[(match.group(1), int(match.group(2)), bool(match.group(3)))] = 100 * row["mean"]["lfw"]
    widths = sorted({w for w, _, _ in cells}, key=lambda w: int(w[:-1]))
    depths = sorted({d for _, d, _ in cells})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    values = list(cells.values()) or [50.0]
    for ax, im in zip(axes, (False, True)):
        grid = np.full((len(widths), len(depths)), np.nan)
        for (w, d, m), v in cells.items():
            if m == im:
                grid[widths.index(w), depths.index(d)] = v
        shown = ax.imshow(grid, cmap="viridis", vmin=min(values), vmax=max(values))
        for i in range(len(widths)):
            for j in range(len(depths)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(depths)), depths)
        ax.set_yticks(range(len(widths)), widths)
        ax.set_xlabel("depth (images per identity, the paper's)")
        ax.set_ylabel("width (identities, the paper's)")
        ax.set_title("with identity mixup" if im else "without identity mixup", fontsize=9)
        fig.colorbar(shown, ax=ax, fraction=0.046, label="LFW (%)")
    fig.suptitle(f"width x depth (Table 3), {summary['scale']} scale: sizes scaled as in the report", fontsize=10)
    return _save(fig, path)


def mds(points: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Fig. 3: embeddings of two classes per set, placed in 2D by classical MDS of their
    cosine distances (one MDS over all sets, so spreads compare)."""
    plt = _pyplot()
    names = list(points)
    embeddings = np.concatenate([points[n][0] for n in names])
    xy = classical_mds(np.clip(1.0 - embeddings @ embeddings.T, 0.0, None))
    markers = ["^", "s", "o", "p", "D", "v"]
    colors = ["#17becf", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    start = 0
    for k, name in enumerate(names):
        emb, labels = points[name]
        part = xy[start:start + len(emb)]
        start += len(emb)
        for j, c in enumerate(np.unique(labels)):
            sel = labels == c
            ax.scatter(part[sel, 0], part[sel, 1], marker=markers[k % len(markers)], color=colors[k % len(colors)],
                       alpha=0.5 if j else 0.9, s=22, label=name if j == 0 else None)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def classical_mds(distances: np.ndarray, dims: int = 2) -> np.ndarray:
    """Torgerson's classical MDS: the coordinates whose Euclidean distances best match
    ``distances`` (the top eigenvectors of the double-centred squared distances)."""
    n = len(distances)
    centre = np.eye(n) - 1.0 / n
    gram = -0.5 * centre @ (distances ** 2) @ centre
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:dims]
    coords = vectors[:, top] * np.sqrt(np.clip(values[top], 0.0, None))
    return coords * np.sign(coords[0] + 1e-12)  # a fixed orientation: the same input, the same plot
