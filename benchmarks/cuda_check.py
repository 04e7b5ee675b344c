#!/usr/bin/env python
"""One-shot check on a CUDA machine: the same code paths as on CPU, compared.

- MTCNN on CUDA vs CPU on LFW images: landmark agreement and the 4 px rate vs lfw_landmark.txt
- embeddings of a random-init MobileFaceNet on CUDA (fp32 and amp) vs CPU: cosine agreement
- the generator on the machine's OpenGL (NVIDIA EGL): renderer name, faces/s, and
  byte-identical images for batch sizes 1 and 64
Needs SYNFACE_DATA with lfw/images + lfw/lfw_landmark.txt (a subset is fine) and facemodels/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from synface.evaluate.embed import embed_crops
from synface.faces.align import align_face
from synface.faces.landmarks import read_landmarks
from synface.faces.mtcnn import MTCNN
from synface.imageio import read_rgb
from synface.models import get_backbone
from synface.paths import data_path

from common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    result: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    lfw = data_path("lfw")
    table = read_landmarks(lfw / "lfw_landmark.txt")
    rels = sorted(p.relative_to(lfw / "images").as_posix() for p in (lfw / "images").rglob("*.jpg"))[:200]
    images = [read_rgb(lfw / "images" / r) for r in rels]
    cpu, gpu = MTCNN(), MTCNN().to("cuda")
    t = time.perf_counter()
    det_gpu = gpu.detect(images)
    result["mtcnn_cuda_seconds"] = time.perf_counter() - t
    det_cpu = cpu.detect(images)
    within, diffs = [], []
    for r, im, dg, dc in zip(rels, images, det_gpu, det_cpu):
        kg, kc = dg.main_face(im.shape), dc.main_face(im.shape)
        within.append(kg is not None and np.linalg.norm(dg.landmarks[kg] - table[r], axis=1).max() <= 4)
        if kg is not None and kc is not None:
            diffs.append(np.abs(dg.landmarks[kg] - dc.landmarks[kc]).max())
    result.update(mtcnn_images=len(rels), mtcnn_cuda_within_4px=float(np.mean(within)),
                  mtcnn_cuda_vs_cpu_max_px=float(np.max(diffs)), mtcnn_cuda_vs_cpu_median_px=float(np.median(diffs)))
    crops = np.stack([align_face(im, table[r], (112, 96)) for im, r in zip(images, rels)])
    torch.manual_seed(0)
    model = get_backbone("mobilefacenet", (112, 96))
    e_cpu = embed_crops(model, crops, device="cpu")
    for amp in (False, True):
        e_gpu = embed_crops(model, crops, device="cuda", amp=amp)
        result[f"embed_cuda_{'amp' if amp else 'fp32'}_min_cosine_vs_cpu"] = float((e_cpu * e_gpu).sum(1).min())
    try:
        from synface.generate.generator import FaceGenerator

        gen = FaceGenerator()
        ids = list(np.repeat(np.arange(4), 16))
        samples = list(np.tile(np.arange(16), 4))
        batch = gen.generate(ids, samples)
        t = time.perf_counter()
        for k in range(8):
            gen.generate([i + 10 * (k + 1) for i in ids], samples)
        result["generator_faces_per_s"] = 8 * 64 / (time.perf_counter() - t)
        singles = np.stack([gen.generate([i], [s])[0] for i, s in zip(ids, samples)])
        result["generator_gl_renderer"] = gen.renderer.ctx.info["GL_RENDERER"]
        result["generator_batch1_equals_batch64"] = bool(np.array_equal(batch, singles))
        result["generator_stage_seconds"] = gen.timings
    except Exception as exc:  # report, do not hide: the other checks still count
        result["generator_error"] = f"{type(exc).__name__}: {exc}"
    write_result(args.json, result)


if __name__ == "__main__":
    main()
