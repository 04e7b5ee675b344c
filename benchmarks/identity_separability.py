#!/usr/bin/env python
"""How distinct are generated people to a real-trained recogniser? (issue 9)

Renders IDENTITIES x IMAGES faces with the default generator (pose, expression and light
varying as in a training set), embeds them with dlib's ResNet (an outside judge) and writes:
``intra`` / ``inter`` (mean descriptor distance within / between identities), ``far_at_0.6``
(share of different-identity pairs under dlib's threshold), ``verification_accuracy`` (best
threshold, 10-fold, balanced pairs), ``detection_rate`` (dlib's HOG detector) overall and per
skin-tone third, the same within |yaw| <= 45 deg (HOG is a frontal detector: the pose prior's
tail past 45 deg is most of its misses), and ``mtcnn_detection_rate`` per third (the
pipeline's own real-trained detector, which handles profile views). The same figures for
real LFW pairs are the reference. Goals: inter >= 0.75 with intra <= 0.45, far_at_0.6 <= 5 %,
detection >= 95 % in every skin-tone third.
Every appearance mode (procedural, learned, both) is measured; the top-level keys are the
default mode's. ``--sheet`` writes a contact sheet: per mode, identities x images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from common import write_result
from synface.evaluate.pairs import load_benchmark
from synface.evaluate.dlib_judge import JUDGE_SIZE, DlibJudge, distance_figures, pair_figures
from synface.evaluate.verification import kfold_accuracy
from synface.faces.mtcnn import MTCNN
from synface.facemodel.learned import APPEARANCE_MODES
from synface.generate.generator import FaceGenerator, GeneratorConfig, image_keys
from synface.imageio import read_rgb


def mtcnn_found(detector: MTCNN, faces: np.ndarray) -> list[bool]:
    """MTCNN on each crop at the training crop's scale (112 px), padded to 150x150 as an LFW
    frame (the face is not the whole frame), as benchmarks/generator_realism.py does."""
    small = [cv2.resize(f, (112, 112), interpolation=cv2.INTER_AREA) for f in faces]
    padded = [np.pad(im, ((19, 19), (19, 19), (0, 0)), mode="edge") for im in small]
    return [det.main_face(im.shape) is not None for det, im in zip(detector.detect(padded), padded)]


def by_third(found: np.ndarray, tone: np.ndarray, prefix: str, within: np.ndarray | None = None) -> dict:
    """Detection rate overall and per skin-tone third (thirds of ``tone``), optionally only
    over the images ``within`` marks."""
    within = np.ones(len(found), bool) if within is None else within
    thirds = np.quantile(tone, [1 / 3, 2 / 3])
    darkest, lightest = tone <= thirds[0], tone > thirds[1]
    parts = {"": within, "_darkest_third": darkest & within, "_middle_third": ~darkest & ~lightest & within,
             "_lightest_third": lightest & within}
    return {f"{prefix}{name}": float(found[sel].mean()) for name, sel in parts.items()}


def generated(
    judge: DlibJudge, identities: int, images: int, rng, appearance: str, sheet: list | None = None, **config
) -> dict:
    """``config``: further GeneratorConfig fields (e.g. sampler, appearance_scale)."""
    size = JUDGE_SIZE
    gen = FaceGenerator(GeneratorConfig(size=(size, size), appearance=appearance, **config))
    ids = np.repeat(np.arange(identities), images)
    samples = np.tile(np.arange(images), identities)
    detector = MTCNN()
    descs, detected, mtcnn, tone, yaw = [], [], [], [], []
    for start in tqdm(range(0, len(ids), 64), desc=f"render + judge ({appearance})", unit="batch"):
        i, s = list(ids[start : start + 64]), list(samples[start : start + 64])
        latents = gen.latents(i, s)
        faces = gen.render(latents, image_keys(i, s))
        if sheet is not None and start == 0:
            sheet.append(faces)
        skin_tones = gen.appearance.skin_tone(torch.from_numpy(latents.appearance))
        yaw += list(np.degrees(np.abs(latents.pose[:, 0])))
        mtcnn += mtcnn_found(detector, faces)
        descs += judge.describe_aligned(faces)
        for face, skin_tone in zip(faces, skin_tones):
            # The aligned crop is tight; real photos show surroundings, so pad by a quarter
            # (edge pixels repeated) before asking the detector.
            pad = size // 4
            detected.append(judge.detect(cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)))
            tone.append(float(skin_tone.mean()))  # mean albedo of the face's skin
    descs = np.stack(descs)
    detected, mtcnn, tone, yaw = (np.array(v) for v in (detected, mtcnn, tone, yaw))
    figures = pair_figures(descs, ids, rng)
    figures.update(
        appearance=appearance, identities=identities, images_per_identity=images, size=[size, size],
        **by_third(detected, tone, "detection_rate"),
        **by_third(detected, tone, "detection_rate_yaw_le_45", within=yaw <= 45),
        **by_third(mtcnn, tone, "mtcnn_detection_rate"),
        # dlib's HOG detector is a frontal one: how much of the miss rate is the pose prior's tail
        detection_rate_by_abs_yaw={f"{a}-{b}": float(detected[(yaw >= a) & (yaw < b)].mean())
                                   for a, b in ((0, 15), (15, 30), (30, 45), (45, 61)) if ((yaw >= a) & (yaw < b)).any()},
    )
    return figures


def real_lfw(judge: DlibJudge, rng) -> dict:
    bench = load_benchmark("lfw")
    descs, detected = [], []
    for rel in tqdm(bench.images, desc="dlib on LFW", unit="img"):
        image = read_rgb(bench.image_root / rel)
        descriptor, found = judge.describe_frame(image)
        descs.append(descriptor)
        detected.append(found)
    descs = np.stack(descs)
    figures = distance_figures(descs, bench.pairs[bench.same], bench.pairs[~bench.same], rng)
    scores = -np.linalg.norm(descs[bench.pairs[:, 0]] - descs[bench.pairs[:, 1]], axis=1)
    figures["verification_accuracy"] = kfold_accuracy(scores, bench.same, bench.folds).mean  # the LFW protocol
    figures["detection_rate"] = float(np.mean(detected))
    return figures


def write_sheet(path: Path, batches: list[np.ndarray], images: int, identities: int = 4, cell: int = 84) -> None:
    """Per mode, ``identities`` rows of ``images`` faces (the first batch's), ``cell`` px each,
    saved as a 256-colour PNG (small enough to commit)."""
    from PIL import Image

    rows = []
    for faces in batches:
        faces = faces[: identities * images]
        small = [cv2.resize(f, (cell, cell), interpolation=cv2.INTER_AREA) for f in faces]
        rows += [np.concatenate(small[r * images : (r + 1) * images], axis=1) for r in range(len(small) // images)]
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--skip-lfw", action="store_true")
    parser.add_argument("--modes", default=",".join(APPEARANCE_MODES), help="appearance modes to measure")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet PNG (rows: identities of each mode)")
    args = parser.parse_args()
    judge = DlibJudge()
    start = time.perf_counter()
    result, sheets = {}, []
    for mode in args.modes.split(","):
        rng = np.random.default_rng(0)  # the same pairs for every mode
        result[f"generator_{mode}"] = generated(judge, args.identities, args.images, rng, mode, sheets)
    default = GeneratorConfig().appearance
    result["default_appearance"] = default
    if f"generator_{default}" in result:
        result.update(result[f"generator_{default}"])  # the default mode's figures at the top level
    if args.sheet:
        write_sheet(args.sheet, sheets, args.images)
    rng = np.random.default_rng(0)
    if not args.skip_lfw:
        result["real_lfw"] = real_lfw(judge, rng)
    result["goals"] = {"inter": ">= 0.75", "intra": "<= 0.45", "far_at_0.6": "<= 0.05", "detection_each_third": ">= 0.95"}
    result["detectors"] = {"detection_rate": "dlib HOG (frontal), all poses",
                           "detection_rate_yaw_le_45": "dlib HOG, images with |yaw| <= 45 deg",
                           "mtcnn_detection_rate": "the pipeline's MTCNN, all poses"}
    result["seconds"] = round(time.perf_counter() - start, 1)
    write_result(args.json, result)


if __name__ == "__main__":
    main()
