import numpy as np
import pytest

from synface.facemodel.latents import (
    SamplerConfig, canonical_illumination, mirror_light, sample_attributes, sample_illumination, sh_basis,
)
from synface.facemodel.scenes import build_photo_scenes, face_on_luminance, pose_spread


def test_a_mirrored_light_lights_the_mirrored_surface_as_the_original():
    rng = np.random.default_rng(3)
    light = sample_illumination(rng)
    normals = rng.normal(size=(500, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    flipped = normals * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(sh_basis(flipped) @ mirror_light(light), sh_basis(normals) @ light, atol=1e-5)


def test_photo_scenes_fit_every_photo_and_normalise_their_light(tmp_path, data_root):
    out = tmp_path / "scenes.npz"
    summary = build_photo_scenes(data_root / "celeba-299", out, progress=False, max_identities=2)
    with np.load(out) as z:
        poses, lights, files = z["poses"], z["lights"], z["files"]
    people = {f.split("/")[0] for f in files}
    assert len(people) == 2 and summary["fitted"] == len(files) == len(lights) == len(poses) >= 20
    target = face_on_luminance(canonical_illumination())
    assert all(abs(face_on_luminance(light) - target) < 1e-3 for light in lights)
    # celeba's faces are mostly near-frontal: most fitted yaws within 30 degrees
    assert np.mean(np.abs(np.degrees(poses[:, 0])) < 30) > 0.8
    spread = pose_spread(poses)
    assert set(spread) == {"yaw", "pitch", "roll"} and 0 < spread["yaw"]["std"] < 30


def test_photo_light_prior_needs_lights_and_unknown_priors_are_refused():
    names = [f"e{i}" for i in range(5)]
    with pytest.raises(ValueError, match="needs the photo lights"):
        sample_attributes(np.random.default_rng(0), names, SamplerConfig(illumination_prior="photos"))
    with pytest.raises(ValueError, match="unknown illumination_prior 'sun'"):
        SamplerConfig(illumination_prior="sun")
    lights = np.stack([canonical_illumination() * k for k in (1.0, 2.0, 3.0)])
    drawn = sample_attributes(np.random.default_rng(0), names, SamplerConfig(illumination_prior="photos"), lights)
    assert any(np.allclose(drawn["illumination"], c) or np.allclose(drawn["illumination"], mirror_light(c)) for c in lights)
