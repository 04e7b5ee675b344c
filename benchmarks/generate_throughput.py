#!/usr/bin/env python
"""Aligned 112x96 faces per second, end to end to uint8 arrays in memory (issue 3).

Goal: >= 300 faces/s on 2 CPU cores. One process renders ``--images`` faces ``--rounds``
times; ``faces_per_s`` is the median round (this machine's timings swing by +-15 % from
minute to minute, so every round is listed too). Stages (summed over rounds, then divided
by the round count): latents = sampling; geometry = latents -> posed, aligned mesh, normals,
textures and light on the CPU; raster = OpenGL upload, draw, downsample, background
composite, readback.

``raster_profile`` splits the raster stage into its phases (each waited for, so their sum
exceeds the pipelined raster time), ``raster_seconds_supersample_1`` renders the same faces
at 1x instead of 2x (4x fewer fragments: how much of the raster is per-fragment work) and
``raster_seconds_lp_threads`` llvmpipe with 1 and 2 threads: the measurements behind issue
17's question of where llvmpipe's time goes.

``--workers N`` also measures N processes started as the dataset builder starts them (one
core each, ``runtime.one_core_per_process``), each rendering its share of the images and
sending the uint8 arrays back to this process; the clock runs from the moment all of them
are ready until the last array has arrived.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from synface.generate.generator import FaceGenerator, GeneratorConfig, image_keys
from synface.runtime import one_core_per_process, tune_cpu_allocator

from common import write_result

DEPTH = 16  # images per identity, as in a dataset (a batch computes each distinct texture once)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes for the multi-process figure (0: skip it)")
    parser.add_argument("--appearance", default=None, help="procedural, learned or both (default: the generator's)")
    parser.add_argument("--background", default=None,
                        help="procedural, natural, photos or photos_face (default: the generator's)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tune_cpu_allocator()  # as the CLI does for every command
    config = GeneratorConfig(size=(112, 96), slots=args.batch)
    config.appearance = args.appearance or config.appearance
    config.background = args.background or config.background
    gen = FaceGenerator(config)
    rounds, stages = [], {}
    for _ in range(args.rounds):
        seconds, timings = run(gen, range(args.images), args.batch, depth=DEPTH)
        rounds.append(args.images / seconds)
        for stage, value in timings.items():
            stages[stage] = stages.get(stage, 0.0) + value / args.rounds
    # Every image its own identity, as in identity-mixup sets where each image has its own phi.
    distinct_seconds = run(gen, range(args.images), args.batch, depth=1)[0]
    gen.renderer.profile = {}
    run(gen, range(args.images), args.batch, depth=DEPTH)
    profile, gen.renderer.profile = gen.renderer.profile, None
    profile = {k: round(v, 3) for k, v in profile.items()}
    low = FaceGenerator(replace(config, supersample=1))
    raster_1x = run(low, range(args.images), args.batch, depth=DEPTH)[1]["raster"]
    del low
    lp_threads = {n: raster_with_lp_threads(config, args.images, args.batch, n) for n in (1, 2)}
    result = {
        "appearance": config.appearance,
        "background": config.background,
        "faces_per_s": statistics.median(rounds),
        "goal_faces_per_s": 300,
        "faces_per_s_rounds": rounds,
        "faces_per_s_every_image_distinct_identity": args.images / distinct_seconds,
        "images": args.images,
        "images_per_identity": DEPTH,
        "batch": args.batch,
        "size": [112, 96],
        "supersample": gen.config.supersample,
        "stage_seconds_per_round": stages,
        "raster_profile": profile,
        "raster_seconds_supersample_1": round(raster_1x, 3),
        "raster_seconds_lp_threads": lp_threads,
        "triangles": int(len(gen.mesh.faces)),
        "vertices": int(gen.mesh.num_vertices),
        "texture_size": list(gen.appearance.size),
        "gl_renderer": gl_renderer(gen),
        "cpu_count": os.cpu_count(),
    }
    if args.workers > 0:
        result["workers"] = args.workers
        result["faces_per_s_workers_rounds"] = [
            run_workers(config, args.images, args.batch, args.workers) for _ in range(args.rounds)
        ]
        result["faces_per_s_workers"] = statistics.median(result["faces_per_s_workers_rounds"])
    write_result(args.json, result)


def raster_with_lp_threads(config: GeneratorConfig, images: int, batch: int, threads: int) -> float:
    """Raster seconds in a fresh process whose llvmpipe runs ``threads`` threads (the
    variable is read when the first GL context starts)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    proc = context.Process(target=_raster_worker, args=(config, images, batch, threads, results))
    proc.start()
    seconds = results.get()
    proc.join()
    return round(seconds, 3)


def _raster_worker(config, images, batch, threads, results) -> None:
    os.environ["LP_NUM_THREADS"] = str(threads)
    tune_cpu_allocator()
    results.put(run(FaceGenerator(config), range(images), batch, depth=DEPTH)[1]["raster"])


def gl_renderer(gen: FaceGenerator) -> str:
    with gen.renderer.ctx as ctx:  # current, so the driver answers for this context
        return ctx.info["GL_RENDERER"]


def run(gen: FaceGenerator, images: range, batch: int, depth: int) -> tuple[float, dict]:
    """Render ``images`` (dataset rows: identity row // depth, sample row % depth); returns
    (seconds, per-stage seconds)."""
    rows = np.asarray(images)
    ids, samples = rows // depth, rows % depth
    gen.generate(list(ids[:batch]), list(samples[:batch]))  # warm-up: context, shaders
    gen.timings.clear()
    start = time.perf_counter()
    latent_time = 0.0
    for i in range(0, len(rows), batch):
        t = time.perf_counter()
        lat = gen.latents(list(ids[i : i + batch]), list(samples[i : i + batch]))
        latent_time += time.perf_counter() - t
        keys = image_keys(ids[i : i + batch], samples[i : i + batch])
        out = gen.render(lat, keys=np.array(keys))
        assert out.dtype == np.uint8
    return time.perf_counter() - start, {"latents": latent_time, **gen.timings}


def run_workers(config: GeneratorConfig, images: int, batch: int, workers: int) -> float:
    """Faces/s of ``workers`` processes rendering interleaved blocks of the images."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(workers + 1)
    results = context.Queue()
    blocks = [range(k * batch, min(images, (k + 1) * batch)) for k in range(-(-images // batch))]
    shares = [blocks[w::workers] for w in range(workers)]
    procs = [context.Process(target=_worker, args=(config, share, batch, ready, results)) for share in shares]
    for p in procs:
        p.start()
    ready.wait()
    start = time.perf_counter()
    received = sum(len(results.get()) for _ in procs)
    seconds = time.perf_counter() - start
    for p in procs:
        p.join()
    if received != images:
        raise RuntimeError(f"workers returned {received} images, expected {images}")
    return images / seconds


def _worker(config: GeneratorConfig, share: list[range], batch: int, ready, results) -> None:
    one_core_per_process()
    tune_cpu_allocator()
    gen = FaceGenerator(config)
    gen.generate([0], [0])  # warm-up: context, shaders
    ready.wait()
    images = [gen.generate(list(np.asarray(r) // DEPTH), list(np.asarray(r) % DEPTH)) for r in share]
    results.put(np.concatenate(images))


if __name__ == "__main__":
    main()
