"""Heads composited into real training photos (generate/photo_background.py)."""

import numpy as np
import pytest
import torch

from synface.datasets.spec import DatasetSpec
from synface.facemodel.latents import MIRROR_SIGN, SamplerConfig
from synface.facemodel.scenes import load_photo_lights
from synface.generate.generator import FaceGenerator, GeneratorConfig, generator_signature, image_keys
from synface.generate.mixup import mix_identities
from synface.generate.photo_background import CANDIDATES, PhotoBackgrounds, composite, inner_face_brightness

IDS, SAMPLES = [2, 2, 2, 9, 9, 14], [0, 1, 2, 0, 1, 0]


@pytest.fixture(scope="module")
def plain(data_root):
    return FaceGenerator(GeneratorConfig(size=(112, 96)))


@pytest.fixture(scope="module", params=["photos", "photos_face"])
def framed(request, data_root):
    return FaceGenerator(GeneratorConfig(size=(112, 96), background=request.param))


def coverage(gen: FaceGenerator, lat) -> np.ndarray:
    """(B, h, w) alpha of the drawn mesh alone, as the compositing saw it."""
    geo = gen.geometry(lat)
    photos = gen.photo_backgrounds.face_brightness[lat.background_photo[:, 0].astype(int)]
    gain = gen.exposure_gain(gen.appearance.skin_tone(torch.from_numpy(lat.appearance)), lat.illumination, photos)
    rgba = gen.renderer.render(geo["pixels"].numpy(), geo["depth"].numpy(), geo["normals"].numpy(),
                               gen.appearance.texture_bytes(torch.from_numpy(lat.appearance)),
                               (lat.illumination * gain[:, None, None]).astype(np.float32),
                               gen.appearance.specular(lat.appearance), image_keys(IDS, SAMPLES))
    return rgba[..., 3]


def test_the_head_is_drawn_over_its_own_photo_and_only_that(framed):
    lat = framed.latents(IDS, SAMPLES)
    images = framed.render(lat, image_keys(IDS, SAMPLES))
    alpha = coverage(framed, lat)
    for b, (index, mirrored) in enumerate(lat.background_photo):
        photo = framed.photo_backgrounds.image(int(index), bool(mirrored))
        empty = alpha[b] == 0
        assert 0.02 < empty.mean() < 0.9
        assert np.array_equal(images[b][empty], photo[empty])  # around the head: the photo, exactly
        covered = alpha[b] == 255
        assert np.abs(images[b][covered].astype(int) - photo[covered]).mean() > 5  # the face is ours


def test_photos_are_drawn_per_image_from_their_own_stream_and_move_no_other_draw(plain, framed):
    own, base = framed.latents(IDS, SAMPLES), plain.latents(IDS, SAMPLES)
    for name in ("shape", "expression", "pose", "illumination", "background", "camera_distance"):
        assert np.array_equal(getattr(own, name), getattr(base, name))
    if framed.config.background == "photos":
        assert np.array_equal(own.appearance, base.appearance)
    chosen = {tuple(row) for row in own.background_photo.tolist()}
    assert len(chosen) >= 5  # one person's photos sit in different photos
    assert base.background_photo is not None and np.all(base.background_photo[:, 0] == -1)
    # Bytes depend on (seed, namespace, identity, sample) alone: not on the batch or its order.
    together = framed.generate(IDS, SAMPLES)
    alone = np.concatenate([framed.generate([i], [s]) for i, s in reversed(list(zip(IDS, SAMPLES)))])[::-1]
    assert np.array_equal(together, alone)
    again = FaceGenerator(framed.config).generate(IDS, SAMPLES)
    assert np.array_equal(together, again)


def test_face_only_draws_no_hair_ears_or_neck_and_lets_the_photo_show_more(plain, data_root):
    head = FaceGenerator(GeneratorConfig(size=(112, 96), background="photos"))
    face = FaceGenerator(GeneratorConfig(size=(112, 96), background="photos_face"))
    drawn = face.drawn_triangles()
    mesh = face.mesh
    head_neck = face.model.region_names.index("head_neck")
    assert 0 < len(drawn) < len(head.drawn_triangles()) == len(mesh.faces)
    assert not np.asarray(mesh.is_shell)[drawn].any() and not (np.asarray(mesh.region)[drawn] == head_neck).any()
    lat = face.latents(IDS, SAMPLES)
    assert np.all(lat.appearance[:, face.hair_columns] == 0.0)  # no hair painted on the forehead
    assert (coverage(face, lat) == 0).mean() > (coverage(head, head.latents(IDS, SAMPLES)) == 0).mean() + 0.02
    # Identity mixup still reproduces each identity at phi = 1 and 0.
    own = np.stack([np.concatenate(face.identity(i)) for i in IDS])
    other = np.stack([np.concatenate(face.identity(i + 1)) for i in IDS])
    keys = image_keys(IDS, SAMPLES)
    for phi, alone in ((1.0, face.latents(IDS, SAMPLES)), (0.0, face.latents(IDS, SAMPLES, identity_vectors=other))):
        mixed = face.latents(IDS, SAMPLES, identity_vectors=mix_identities(own, other, np.full(len(IDS), phi, np.float32)))
        assert np.array_equal(face.render(mixed, keys), face.render(alone, keys))


def test_the_photo_turns_its_head_the_way_the_render_does():
    yaws = np.radians(np.linspace(-40, 40, 401))
    photos = PhotoBackgrounds(np.zeros((len(yaws), 4, 4, 3), np.uint8), yaws, np.full(len(yaws), 0.5))
    rng = np.random.default_rng(0)
    errors, random_errors = [], []
    for target in np.radians(rng.uniform(-30, 30, 300)):
        index, mirrored = photos.choose(rng, target)
        errors.append(abs((-yaws[index] if mirrored else yaws[index]) - target))
        random_errors.append(abs(yaws[rng.integers(len(yaws))] - target))
    assert CANDIDATES > 1 and np.mean(errors) < 0.3 * np.mean(random_errors)
    assert np.array_equal(photos.image(3, True), photos.crops[3][:, ::-1])


def test_photo_light_is_the_background_photos_own_and_exposure_aims_at_its_face(data_root):
    config = GeneratorConfig(size=(112, 96), background="photos", sampler=SamplerConfig(illumination_prior="photos"))
    gen = FaceGenerator(config)
    lat = gen.latents(IDS, SAMPLES)
    lights = load_photo_lights()
    for light, (index, mirrored) in zip(lat.illumination, lat.background_photo):
        expected = lights[int(index)] * (MIRROR_SIGN[:, None] if mirrored else 1.0)
        assert np.allclose(light, expected, atol=1e-6)
    skin = gen.appearance.skin_tone(torch.from_numpy(lat.appearance))
    low, high = (gen.exposure_gain(skin, lat.illumination, np.full(len(IDS), t)) for t in (0.3, 0.6))
    inside = (low > 0.5) & (high < 4.0)
    assert inside.any() and np.allclose(high[inside] / low[inside], 2 ** gen.config.exposure_strength)
    crops = np.full((2, 112, 96, 3), 40, np.uint8)
    crops[1] = 200
    assert np.allclose(inner_face_brightness(crops), [40 / 255, 200 / 255])
    assert "background=photos:" in generator_signature(config)


def test_compositing_is_premultiplied_over_and_names_are_checked():
    rgba = np.zeros((1, 2, 2, 4), np.uint8)
    rgba[0, 0, 0] = (100, 50, 0, 255)  # covered
    rgba[0, 0, 1] = (50, 25, 0, 128)  # half covered, premultiplied
    under = np.full((1, 2, 2, 3), 200, np.uint8)
    out = composite(rgba, under)
    assert out[0, 0, 0].tolist() == [100, 50, 0]
    assert out[0, 0, 1].tolist() == [round(50 + 127 / 255 * 200), round(25 + 127 / 255 * 200), round(127 / 255 * 200)]
    assert out[0, 1, 1].tolist() == [200, 200, 200]
    for name in ("photos", "photos_face"):
        assert DatasetSpec(name="x", identities=2, samples=2, background=name).background == name
    with pytest.raises(ValueError, match="unknown background 'neon'; choose from procedural, natural, photos, photos_face"):
        DatasetSpec(name="x", identities=2, samples=2, background="neon")
