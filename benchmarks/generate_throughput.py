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
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    gen = FaceGenerator(GeneratorConfig(size=(112, 96), slots=args.batch))
    depth = 16
    ids = np.arange(args.images) // depth
    samples = np.arange(args.images) % depth
    gen.generate(list(ids[: args.batch]), list(samples[: args.batch]))  # warm-up: context, shaders
    gen.timings.clear()
    start = time.perf_counter()
    latent_time = 0.0
    for i in range(0, args.images, args.batch):
        t = time.perf_counter()
        lat = gen.latents(list(ids[i : i + args.batch]), list(samples[i : i + args.batch]))
        latent_time += time.perf_counter() - t
        keys = [image_key(k, s) for k, s in zip(ids[i : i + args.batch], samples[i : i + args.batch])]
        images = gen.render(lat, keys=np.array(keys))
        assert images.dtype == np.uint8
    total = time.perf_counter() - start
    result = {
        "faces_per_s": args.images / total,
        "goal_faces_per_s": 300,
        "images": args.images,
        "batch": args.batch,
        "size": [112, 96],
        "supersample": gen.config.supersample,
        "seconds": total,
        "stage_seconds": {"latents": latent_time, **gen.timings},
        "triangles": int(len(gen.mesh.faces)),
        "vertices": int(gen.mesh.num_vertices),
        "gl_renderer": gen.renderer.ctx.info["GL_RENDERER"],
        "cpu_count": os.cpu_count(),
    }
    write_result(args.json, result)


if __name__ == "__main__":
    main()
