#!/usr/bin/env python
"""Aligned 112x96 faces per second, end to end to uint8 arrays in memory (issue 3).

Goal: >= 300 faces/s on 2 CPU cores. Reports the per-stage breakdown (geometry = latents ->
posed, aligned mesh on the CPU; raster = OpenGL upload, draw, readback; composite =
supersample filter + background) and the OpenGL renderer in use.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from synface.generate.generator import FaceGenerator, GeneratorConfig, image_key

from common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--appearance", default=None, help="procedural, learned or both (default: the generator's)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    config = GeneratorConfig(size=(112, 96), slots=args.batch)
    config.appearance = args.appearance or config.appearance
    gen = FaceGenerator(config)
    # 16 images per identity, as in a dataset (a batch computes each distinct texture once).
    seconds, latent_time, timings = run(gen, args.images, args.batch, depth=16)
    # Every image its own identity, as in identity-mixup sets where each image has its own phi.
    distinct_seconds = run(gen, args.images, args.batch, depth=1)[0]
    result = {
        "appearance": config.appearance,
        "faces_per_s": args.images / seconds,
        "goal_faces_per_s": 300,
        "faces_per_s_every_image_distinct_identity": args.images / distinct_seconds,
        "images": args.images,
        "images_per_identity": 16,
        "batch": args.batch,
        "size": [112, 96],
        "supersample": gen.config.supersample,
        "seconds": seconds,
        "stage_seconds": {"latents": latent_time, **timings},
        "triangles": int(len(gen.mesh.faces)),
        "vertices": int(gen.mesh.num_vertices),
        "texture_size": list(gen.appearance.size),
        "gl_renderer": gl_renderer(gen),
        "cpu_count": os.cpu_count(),
    }
    write_result(args.json, result)


def gl_renderer(gen: FaceGenerator) -> str:
    with gen.renderer.ctx as ctx:  # current, so the driver answers for this context
        return ctx.info["GL_RENDERER"]


def run(gen: FaceGenerator, images: int, batch: int, depth: int) -> tuple[float, float, dict]:
    ids = np.arange(images) // depth
    samples = np.arange(images) % depth
    gen.generate(list(ids[:batch]), list(samples[:batch]))  # warm-up: context, shaders
    gen.timings.clear()
    start = time.perf_counter()
    latent_time = 0.0
    for i in range(0, images, batch):
        t = time.perf_counter()
        lat = gen.latents(list(ids[i : i + batch]), list(samples[i : i + batch]))
        latent_time += time.perf_counter() - t
        keys = [image_key(k, s) for k, s in zip(ids[i : i + batch], samples[i : i + batch])]
        out = gen.render(lat, keys=np.array(keys))
        assert out.dtype == np.uint8
    return time.perf_counter() - start, latent_time, dict(gen.timings)


if __name__ == "__main__":
    main()
