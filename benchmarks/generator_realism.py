#!/usr/bin/env python
"""Do generated faces look like faces to a real-face detector? (issue 3)

Runs the repo's MTCNN on 112x112 renders across the yaw range and reports the detection rate
(goal >= 95 % for |yaw| <= 45 deg), the landmark error of detections against the projected
ground truth, and the mean pixel-space intra-class variation when one attribute varies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from synface.facemodel.latents import SamplerConfig
from synface.faces.mtcnn import MTCNN
from synface.generate.generator import FaceGenerator, GeneratorConfig

from common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--per-identity", type=int, default=4)
    parser.add_argument("--appearance", default=None, help="procedural, learned or both (default: the generator's)")
    args = parser.parse_args()
    config = GeneratorConfig(size=(112, 112))
    config.appearance = args.appearance or config.appearance
    gen = FaceGenerator(config)
    detector = MTCNN()
    ids = list(np.repeat(np.arange(args.identities), args.per_identity))
    samples = list(np.tile(np.arange(args.per_identity), args.identities))
    # A wide yaw prior so every bin is populated.
    sampler = SamplerConfig(yaw_std_deg=40.0, yaw_max_deg=60.0)
    yaws, found, errors = [], [], []
    for i in range(0, len(ids), 64):
        lat = gen.latents(ids[i : i + 64], samples[i : i + 64], "validation", sampler=sampler)
        geo = gen.geometry(lat)
        truth = (geo["landmarks5"].numpy() + 0.5) / gen.config.supersample - 0.5
        images = gen.render(lat, keys=np.arange(len(lat)))
        # Detect on the crop padded to 150x150 (LFW-like framing: the face is not the whole frame).
        padded = [np.pad(im, ((19, 19), (19, 19), (0, 0)), mode="edge") for im in images]
        for b, det in enumerate(detector.detect(padded)):
            yaws.append(abs(np.degrees(lat.pose[b, 0])))
            k = det.main_face(padded[b].shape)
            found.append(k is not None)
            if k is not None:
                errors.append(np.linalg.norm(det.landmarks[k] - 19 - truth[b], axis=1).max())
    yaws, found = np.array(yaws), np.array(found)
    bins = [(0, 15), (15, 30), (30, 45), (45, 60)]
    result = {
        "appearance": config.appearance,
        "mtcnn_detection_rate": float(found[yaws <= 45].mean()),
        "goal_detection_rate": 0.95,
        "detection_rate_by_abs_yaw": {f"{a}-{b}": float(found[(yaws >= a) & (yaws < b)].mean()) for a, b in bins
                                      if ((yaws >= a) & (yaws < b)).any()},
        "images": int(len(found)),
        "landmark_error_px_median": float(np.median(errors)),
        "landmark_error_px_p90": float(np.percentile(errors, 90)),
        "intra_class_pixel_std": intra_class_variation(gen),
    }
    write_result(args.json, result)


def intra_class_variation(gen: FaceGenerator, identities: int = 16, per_identity: int = 8) -> dict:
    """Mean over identities of the per-pixel std (0-255) across one identity's images."""
    out = {}
    for name, vary in {"non": (), "expression": ("expression",), "pose": ("pose",),
                       "illumination": ("illumination",), "all": ("expression", "pose", "illumination")}.items():
        ids = list(np.repeat(np.arange(identities), per_identity))
        samples = list(np.tile(np.arange(per_identity), identities))
        lat = gen.latents(ids, samples, "validation", sampler=SamplerConfig(vary=vary))
        images = gen.render(lat, keys=np.arange(len(lat))).astype(np.float64)
        per_id = images.reshape(identities, per_identity, -1)
        out[name] = float(per_id.std(axis=1).mean())
    return out


if __name__ == "__main__":
    main()
