"""Score a face-embedding model on a verification benchmark, end to end."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from synface.evaluate.pairs import PairList, load_benchmark
from synface.evaluate.embed import embed_crops
from synface.evaluate.verification import verification_metrics
from synface.faces.align import from_arcface_112
from synface.faces.pipeline import aligned_crops
from synface.runtime import plan_runtime

EMBED_COMPILE_MIN_IMAGES = 4096  # LFW has 7,701


def pair_scores(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine similarity of each pair of L2-normalised embeddings."""
    return np.einsum("ij,ij->i", embeddings[pairs[:, 0]], embeddings[pairs[:, 1]])


def evaluate_model(
    model: nn.Module,
    benchmark: str | PairList,
    input_size: tuple[int, int],
    grayscale: bool = False,
    flip: bool = True,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    channels_last: bool | str = "auto",
    amp: bool | str = "auto",
    compile: bool | str = "auto",
) -> dict:
    """Align (cached), embed, and score every pair; returns the result record.

    ``amp`` / ``channels_last`` / ``compile``: ``auto`` lets ``synface.runtime`` choose for
    this machine (bf16 only where the CPU has native bf16, fp16 on CUDA; compiled for
    benchmarks of thousands of images), else as given. The record says what ran
    (``precision``, ``runtime``)."""
    start = time.perf_counter()
    bench = load_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    # Compiling (~3 s with inductor's cache warm, ~15 s cold) repays itself over thousands
    # of crops: LFW's 7,701 embed 17-19 % faster end to end (benchmarks/evaluate_lfw.py).
    plan = plan_runtime(device, amp, compile=compile, channels_last=channels_last,
                        long_run=len(bench.images) >= EMBED_COMPILE_MIN_IMAGES)
    if bench.crops is not None:
        crops, counts = from_arcface_112(bench.crops, input_size, grayscale), {"aligned_112x112": len(bench.crops)}
    else:
        crops, counts = aligned_crops(
            bench.image_root, bench.images, input_size, bench.landmarks_file, grayscale,
            device=str(device), desc=f"align {bench.name}",
        )
    aligned = time.perf_counter()
    embeddings = embed_crops(
        model, crops, batch_size, flip, device, plan.channels_last, plan.precision, desc=f"embed {bench.name}",
        compile=plan.compile,
    )
    embedded = time.perf_counter()
    scores = pair_scores(embeddings, bench.pairs)
    result = {"benchmark": bench.name, **verification_metrics(scores, bench.same, bench.folds)}
    result.update(
        images=len(bench.images),
        input_size=list(input_size),
        grayscale=grayscale,
        flip=flip,
        amp=plan.amp,
        precision=plan.precision,
        runtime=plan.record(),
        alignment=counts,
        align_seconds=aligned - start,
        embed_seconds=embedded - aligned,
        seconds=time.perf_counter() - start,
    )
    return result

