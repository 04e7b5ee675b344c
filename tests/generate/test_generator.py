import numpy as np
import pytest
import torch

from synface.facemodel.appearance import texel_surface
from synface.errors import SynfaceError
from synface.facemodel.latents import MIRROR_SIGN, SamplerConfig
from synface.faces.templates import template
from synface.generate.generator import FaceGenerator, GeneratorConfig, generator_signature
from synface.generate.mixup import mix_identities, phi_grid


@pytest.fixture(scope="module")
def generator(data_root):
    return FaceGenerator(GeneratorConfig(size=(112, 96)))


def test_landmarks_are_aligned_to_the_template(generator):
    lat = generator.latents(list(range(12)), [0] * 12)
    geo = generator.geometry(lat)
    s = generator.config.supersample
    five = (geo["landmarks5"].numpy() + 0.5) / s - 0.5  # supersampled -> crop pixels
    target = template((112, 96))
    # Least squares: each face's landmark centroid is the template's; frontal neutral faces
    # put every point within a few pixels (face shape varies, a similarity cannot absorb it).
    assert np.abs(five.mean(1) - target.mean(0)).max() < 1e-3
    frontal = generator.latents(list(range(6)), [0] * 6, sampler=SamplerConfig(vary=()))
    f5 = (generator.geometry(frontal)["landmarks5"].numpy() + 0.5) / s - 0.5
    errors = np.linalg.norm(f5 - target, axis=2)
    assert np.median(errors) < 2.5 and errors.max() < 5.0


def test_rendered_landmarks_appear_where_they_are_projected(generator):
    """Paint small patches around the nose tip and mouth corners white on black, render, and
    find them in the 112x96 crop within 1 px of their projected positions."""
    lat = generator.latents([3, 4], [0, 0], sampler=SamplerConfig(vary=()))
    geo = generator.geometry(lat)
    mesh = generator.mesh
    size = generator.appearance.size
    texel_pos, _, covered = texel_surface(mesh, size)
    lm_pos = mesh.neutral.numpy()[mesh.landmarks68]
    s = generator.config.supersample
    sh = np.zeros((2, 9, 3), np.float32)
    sh[:, 0] = 1.0 / 0.282095  # uniform irradiance 1
    for k in (30, 48, 54):
        near = (np.linalg.norm(texel_pos - lm_pos[k], axis=1) < 0.25) & covered.ravel()
        texture = np.zeros((2, size[0] * size[1], 3), np.uint8)
        texture[:, near] = 255
        rgba = generator.renderer.render(geo["pixels"].numpy(), geo["depth"].numpy(), geo["normals"].numpy(),
                                         texture.reshape(2, *size, 3), sh, np.zeros(2), np.arange(2))
        small = rgba[..., 0].astype(np.float64)
        for b in range(2):
            expected = (geo["pixels"][b, mesh.landmarks68[k]].numpy() + 0.5) / s - 0.5
            weight = np.clip(small[b] - 20, 0, None)
            yy, xx = np.mgrid[:112, :96]
            centre = np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()
            assert np.abs(centre - expected).max() < 1.0, (k, centre, expected)


def test_identity_mixup_endpoints_reproduce_each_identity_exactly(generator):
    # A person with hair volume (a shell standing off the scalp) and a bald one: the endpoints
    # must reproduce hair geometry too, and the midpoint has half of the first one's hair.
    shape_dim = generator.model.num_shape
    hair = lambda a: generator.appearance.hair_geometry(a[None, shape_dim:])[0]  # noqa: E731
    people = [np.concatenate(generator.identity(i)) for i in range(40)]
    i1 = next(i for i, a in enumerate(people) if hair(a).max() > 0.5)
    i2 = next(i for i, a in enumerate(people) if not hair(a).any())
    a1, a2 = people[i1], people[i2]
    half = mix_identities(a1, a2, 0.5)
    assert np.allclose(hair(half), hair(a1) / 2)
    assert np.array_equal(mix_identities(a1, a2, 1.0), a1)
    assert np.array_equal(mix_identities(a1, a2, 0.0), a2)
    mixed = mix_identities(np.stack([a1, a1, a1]), np.stack([a2, a2, a2]), np.array([1.0, 0.0, 0.5]))
    lat = generator.latents([i1, i1, i1], [2, 2, 2], identity_vectors=mixed)
    plain1 = generator.latents([i1], [2])
    plain2 = generator.latents([i1], [2], identity_vectors=a2[None])
    images = generator.render(lat, keys=np.array([0, 1, 2]))
    assert np.array_equal(images[0], generator.render(plain1, keys=np.array([0]))[0])
    assert np.array_equal(images[1], generator.render(plain2, keys=np.array([1]))[0])
    assert not np.array_equal(images[2], images[0]) and not np.array_equal(images[2], images[1])
    assert len(phi_grid("full")) == 21 and phi_grid("syn3")[0] == pytest.approx(0.6)


def test_same_seed_gives_identical_bytes_with_batch_sizes_1_and_64(generator):
    identities = list(np.repeat(np.arange(20, 24), 16))
    samples = list(np.tile(np.arange(16), 4))
    batch = generator.generate(identities, samples)
    singles = np.stack([generator.generate([i], [s])[0] for i, s in zip(identities, samples)])
    assert batch.shape == (64, 112, 96, 3) and batch.dtype == np.uint8
    assert np.array_equal(batch, singles)
    # A fresh generator with the same seed makes the same images; another seed does not.
    again = FaceGenerator(GeneratorConfig(seed=0), model=generator.model).generate(identities[:4], samples[:4])
    assert np.array_equal(again, batch[:4])
    other = FaceGenerator(GeneratorConfig(seed=1), model=generator.model).generate(identities[:4], samples[:4])
    assert not np.array_equal(other, batch[:4])


def test_fixed_pose_keeps_landmarks_while_expression_changes(generator):
    # Camera distance is an "other" factor; hold it too, so only the expression varies.
    sampler = SamplerConfig(vary=("expression",), camera_distance_cm=(80.0, 80.0))
    lat = generator.latents([5] * 6, list(range(6)), sampler=sampler)
    assert np.ptp(lat.pose, axis=0).max() == 0 and np.ptp(lat.expression, axis=0).max() > 0
    geo = generator.geometry(lat)
    # Rigid points (jaw ends by the ears, nose bridge) in the camera image, in crop pixels.
    scale = torch.linalg.norm(geo["alignment"][0, :, 0]).item() / generator.config.supersample
    rigid = geo["camera_image"][:, generator.mesh.landmarks68[[0, 16, 27, 28]]] * scale
    assert (rigid - rigid[0]).abs().max().item() < 1.0
    images = generator.render(lat)
    assert np.abs(images[1:].astype(int) - images[0]).max() > 30  # the face did change


def test_auto_exposure_evens_out_face_brightness(data_root):
    ids = list(range(24))
    brightness = {}
    for strength in (0.0, 0.75):
        # procedural skin tones span very light to very dark: what auto-exposure is for
        gen = FaceGenerator(GeneratorConfig(size=(112, 96), exposure_strength=strength, appearance="procedural"))
        faces = gen.generate(ids, [0] * len(ids))
        brightness[strength] = faces[:, 35:85, 25:71].mean(axis=(1, 2, 3))  # the face's centre
    # a camera exposes for the face: dim, dark faces brighten, and the spread shrinks
    assert brightness[0.75].std() < 0.7 * brightness[0.0].std()
    assert brightness[0.75].min() > brightness[0.0].min() + 10


def test_appearance_is_a_linear_uv_texture_and_uploads_its_rounded_bytes(generator):
    app = generator.appearance
    a1, a2 = (torch.from_numpy(generator.identity(i)[1])[None] for i in (1, 2))
    t1, t2, mid = app.albedo(a1), app.albedo(a2), app.albedo(0.5 * a1 + 0.5 * a2)
    assert t1.shape == (1, *app.size, 3)
    unclamped = (t1 > 0.01) & (t1 < 0.99) & (t2 > 0.01) & (t2 < 0.99)
    assert torch.allclose(mid[unclamped], (0.5 * t1 + 0.5 * t2)[unclamped], atol=1e-5)
    expected = (app.albedo(a1).double() * 255).round().to(torch.uint8).numpy()
    assert np.abs(app.texture_bytes(a1).astype(int) - expected).max() <= 1


def _gradient_background(params: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Reference for the 'gradient' kind (params[7] < 0.4) of render/background.py."""
    h, w = size
    ys, xs = np.mgrid[:h, :w]
    x, y = -1 + 2 * xs / (w - 1), -1 + 2 * ys / (h - 1)
    angle = params[6] * 2 * np.pi
    pattern = (0.5 + 0.5 * (x * np.cos(angle) + y * np.sin(angle)))[..., None]
    c1, c2 = 0.1 + 0.8 * params[0:3], 0.1 + 0.8 * params[3:6]
    return np.clip(c1 * pattern + c2 * (1 - pattern), 0, 1) * 255


def test_renderer_composites_the_face_over_its_procedural_background(generator):
    lat = generator.latents([0, 1], [0, 0])
    lat.background[:] = [[0.9, 0.1, 0.2, 0.1, 0.3, 0.9, 0.1, 0.2], [0.2, 0.8, 0.1, 0.7, 0.6, 0.1, 0.6, 0.3]]
    geo = generator.geometry(lat)
    sh = lat.illumination.astype(np.float32)
    args = (geo["pixels"].numpy(), geo["depth"].numpy(), geo["normals"].numpy(),
            generator.appearance.texture_bytes(torch.from_numpy(lat.appearance)), sh, np.zeros(2), np.arange(2))
    rgba = generator.renderer.render(*args).astype(float)
    rgb = generator.renderer.render(*args, backgrounds=lat.background).astype(float)
    assert rgb.shape == (2, 112, 96, 3)
    for b in range(2):
        expected = _gradient_background(lat.background[b].astype(np.float64), (112, 96))
        alpha = rgba[b, ..., 3:] / 255.0
        empty, covered = alpha[..., 0] == 0, alpha[..., 0] == 1
        assert empty.mean() > 0.1 and covered.mean() > 0.3
        assert np.abs(rgb[b][empty] - expected[empty]).max() <= 1.0  # background alone
        assert np.abs(rgb[b][covered] - rgba[b, ..., :3][covered]).max() <= 1.0  # face alone
        # at the silhouette: premultiplied face colour + (1 - coverage) x background
        edge = ~empty & ~covered
        blend = rgba[b, ..., :3] + (1 - alpha) * expected
        assert np.abs(rgb[b][edge] - blend[edge]).max() <= 2.0


def test_identity_coefficients_are_cached_but_handed_out_as_copies(generator):
    shape, appearance = generator.identity(7)
    shape[:] = 0.0  # a caller's edit must not reach the cache
    again = generator.identity(7)
    assert np.abs(again[0]).max() > 0
    generator._identities.clear()
    recomputed = generator.identity(7)
    assert np.array_equal(recomputed[0], again[0]) and np.array_equal(recomputed[1], again[1])


def test_natural_backgrounds_change_only_the_background_and_are_deterministic(generator, data_root):
    natural = FaceGenerator(GeneratorConfig(size=(112, 96), background="natural"))
    lat = generator.latents(list(range(6)), [0] * 6)
    keys = np.arange(6)
    plain, ours, again = generator.render(lat, keys), natural.render(lat, keys), natural.render(lat, keys)
    assert np.array_equal(ours, again)
    geo = generator.geometry(lat)
    rgba = generator.renderer.render(
        geo["pixels"].numpy(), geo["depth"].numpy(), geo["normals"].numpy(),
        generator.appearance.texture_bytes(torch.from_numpy(lat.appearance)),
        (lat.illumination * generator.exposure_gain(generator.appearance.skin_tone(torch.from_numpy(lat.appearance)),
                                                    lat.illumination)[:, None, None]).astype(np.float32),
        generator.appearance.specular(lat.appearance), keys)
    covered, empty = rgba[..., 3] == 255, rgba[..., 3] == 0
    assert np.array_equal(plain[covered], ours[covered])  # the face is untouched
    assert np.abs(plain[empty].astype(int) - ours[empty]).mean() > 10  # the background is not
    # natural-image statistics: low saturation, structure at every scale (not flat colour)
    bg = ours[empty].astype(float)
    saturation = (bg.max(1) - bg.min(1)) / np.maximum(bg.max(1), 1)
    assert np.median(saturation) < np.median((plain[empty].max(1) - plain[empty].min(1)) / np.maximum(plain[empty].max(1), 1))
    corner = ours[:, :20, :20].astype(float).mean(-1)
    assert np.median(corner.std(axis=(1, 2))) > 1.0
    assert "background=natural" in generator_signature(natural.config)
    assert "background" not in generator_signature(generator.config)
    with pytest.raises(SynfaceError, match="unknown background style 'neon'"):
        FaceGenerator(GeneratorConfig(size=(112, 96), background="neon")).renderer


def test_photo_light_draws_lights_fitted_to_real_photos(data_root):
    from synface.facemodel.scenes import load_photo_lights

    config = GeneratorConfig(size=(112, 96), sampler=SamplerConfig(illumination_prior="photos"))
    gen = FaceGenerator(config)
    lights = load_photo_lights()
    lat = gen.latents(list(range(8)), [0] * 8)
    mirrored = lights * MIRROR_SIGN[None, :, None]
    for light in lat.illumination:
        assert np.isclose(lights, light, atol=1e-6).all(axis=(1, 2)).any() or \
            np.isclose(mirrored, light, atol=1e-6).all(axis=(1, 2)).any()
    again = FaceGenerator(config).latents(list(range(8)), [0] * 8)
    assert np.array_equal(lat.illumination, again.illumination)
    assert "light=photos:" in generator_signature(config)
    image = gen.render(lat)
    assert image.shape == (8, 112, 96, 3) and image.mean() > 40


def test_hair_change_swaps_only_hair_and_leaves_every_other_draw(generator, data_root):
    changed = FaceGenerator(GeneratorConfig(size=(112, 96), sampler=SamplerConfig(hair_change=1.0)))
    ids, samples = [2, 2, 2, 9], [0, 1, 2, 0]
    plain, swapped = generator.latents(ids, samples), changed.latents(ids, samples)
    hair = changed.hair_columns
    rest = np.setdiff1d(np.arange(plain.appearance.shape[1]), hair)
    assert len(hair) == 11 and np.array_equal(plain.appearance[:, rest], swapped.appearance[:, rest])
    assert not np.allclose(plain.appearance[:, hair], swapped.appearance[:, hair])
    assert len({swapped.appearance[i, hair].tobytes() for i in range(3)}) == 3  # a haircut per photo
    for name in ("shape", "expression", "pose", "illumination", "background"):
        assert np.array_equal(getattr(plain, name), getattr(swapped, name))
    again = FaceGenerator(GeneratorConfig(size=(112, 96), sampler=SamplerConfig(hair_change=1.0))).latents(ids, samples)
    assert np.array_equal(again.appearance, swapped.appearance)
    with pytest.raises(ValueError, match="hair_change is a probability"):
        SamplerConfig(hair_change=1.5)


def test_photo_variation_changes_each_photos_skin_and_no_other_draw(generator, data_root):
    varied = FaceGenerator(GeneratorConfig(size=(112, 96), sampler=SamplerConfig(photo_variation=1.0)))
    ids, samples = [2, 2, 2, 9], [0, 1, 2, 0]
    plain, own = generator.latents(ids, samples), varied.latents(ids, samples)
    residual = varied.residual_columns
    width = plain.appearance.shape[1]
    # The basis's residual components, appended after the rest.
    assert len(residual) >= 2 and residual == list(range(width, width + len(residual)))
    assert np.array_equal(plain.appearance, own.appearance[:, :width])
    assert len({own.appearance[i, residual].tobytes() for i in range(3)}) == 3  # its own per photo
    assert 0.5 < own.appearance[:, residual].std() < 1.5
    for name in ("shape", "expression", "pose", "illumination", "background"):
        assert np.array_equal(getattr(plain, name), getattr(own, name))
    # The residuals change the skin's pixels, not where the face is; the same draw, the same bytes.
    images, base = varied.render(own), generator.render(plain)
    changed = np.abs(images.astype(int) - base).mean(axis=(1, 2, 3))
    assert np.all(changed > 0.5) and np.array_equal(images, varied.render(varied.latents(ids, samples)))
    with pytest.raises(SynfaceError, match="photo_variation needs the learned basis's photo residuals"):
        generator.latents(ids, samples, sampler=SamplerConfig(photo_variation=0.5))
    with pytest.raises(ValueError, match="photo_variation is a spread"):
        SamplerConfig(photo_variation=-1.0)


def test_glasses_paint_dark_frames_around_the_eyes_per_photo_and_move_no_other_draw(generator, data_root):
    from synface.faces.templates import template

    wearing = FaceGenerator(GeneratorConfig(size=(112, 96), sampler=SamplerConfig(glasses=1.0)))
    some = FaceGenerator(GeneratorConfig(size=(112, 96), sampler=SamplerConfig(glasses=0.5)))
    ids, samples = [3] * 12, list(range(12))
    plain, own = generator.latents(ids, samples), wearing.latents(ids, samples)
    column = wearing.glasses_column
    assert column == plain.appearance.shape[1] and np.all(own.appearance[:, column] == 1.0)
    assert np.array_equal(plain.appearance, own.appearance[:, :column])
    for name in ("shape", "expression", "pose", "illumination", "background"):
        assert np.array_equal(getattr(plain, name), getattr(own, name))
    worn = some.latents(ids, samples).appearance[:, column]
    assert set(worn.tolist()) == {0.0, 1.0}  # on and off between photos of one person
    # Frontal, neutral: the frames darken a ring around each eye; the rest of the face stays.
    plain.pose[:], plain.expression[:], own.pose[:], own.expression[:] = 0.0, 0.0, 0.0, 0.0
    base, framed = generator.render(plain.row(0))[0], wearing.render(own.row(0))[0]
    darker = base.astype(int).sum(-1) - framed.astype(int).sum(-1)
    eye_left, eye_right = template((112, 96))[:2]
    ring = np.zeros((112, 96), bool)
    yy, xx = np.mgrid[:112, :96]
    for x, y in (eye_left, eye_right):
        r = np.hypot(xx - x, (yy - y) * 1.3)
        ring |= (r > 6) & (r < 14)
    mouth = (yy > 80) & (yy < 95) & (np.abs(xx - 48) < 15)
    assert (darker[ring] > 150).mean() > 0.15 and np.abs(darker[mouth]).max() <= 3
    with pytest.raises(SynfaceError, match="glasses needs the spectacles component"):
        generator.latents(ids, samples, sampler=SamplerConfig(glasses=0.5))
    with pytest.raises(ValueError, match="glasses is a probability"):
        SamplerConfig(glasses=2.0)


def test_mtcnn_alignment_puts_the_detected_points_on_the_template(generator, data_root):
    from synface.faces.mtcnn import MTCNN

    mtcnn = FaceGenerator(GeneratorConfig(size=(112, 96), alignment="mtcnn"))
    ids = list(range(8))
    lat = generator.latents(ids, [0] * 8, sampler=SamplerConfig(vary=("expression",)))
    exact, ours = generator.render(lat), mtcnn.render(lat)
    one_by_one = np.concatenate([mtcnn.render(lat.row(i), np.array([i])) for i in range(2)])
    assert np.array_equal(ours[:2], one_by_one)  # an image's bytes do not depend on its batch
    assert "alignment=mtcnn" in generator_signature(mtcnn.config) and mtcnn.timings["detect"] > 0
    detector, pad, target = MTCNN(), 24, template((112, 96))

    def error(images):
        found = detector.detect([np.pad(im, ((pad, pad), (pad, pad), (0, 0)), mode="edge") for im in images])
        return np.mean([np.abs(d.landmarks[0] - pad - target).mean() for d in found])

    # MTCNN's own points land nearer the template on its re-aligned renders than on exact ones
    assert error(ours) < error(exact)
    with pytest.raises(SynfaceError, match="unknown alignment 'eyes'"):
        FaceGenerator(GeneratorConfig(size=(112, 96), alignment="eyes"))


def test_a_signature_only_hashes_and_the_builder_builds_explicitly(tmp_path, monkeypatch, data_root):
    import synface.facemodel.learned as learned
    from synface.errors import DataNotFoundError
    from synface.generate.generator import ensure_generator_inputs

    monkeypatch.setenv("SYNFACE_CACHE", str(tmp_path / "empty-cache"))
    builds = []
    def fake_build(real, out, model=None, fit="landmarks5"):
        builds.append(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"a basis")

    monkeypatch.setattr(learned, "build_learned_appearance", fake_build)
    with pytest.raises(DataNotFoundError, match="synface appearance build"):
        generator_signature(GeneratorConfig())  # a name was wanted: no multi-minute build behind it
    assert builds == [] and not (tmp_path / "empty-cache" / "appearance").exists()
    assert generator_signature(GeneratorConfig(appearance="procedural")).endswith("appearance=procedural")
    with pytest.raises(DataNotFoundError, match="synface appearance scenes"):
        generator_signature(GeneratorConfig(appearance="procedural",
                                            sampler=SamplerConfig(illumination_prior="photos")))
    ensure_generator_inputs(GeneratorConfig(appearance="procedural"))
    assert builds == []  # nothing to build for procedural faces
    ensure_generator_inputs(GeneratorConfig())
    assert builds == [tmp_path / "empty-cache" / "appearance" / "celeba-299.npz"]


def test_a_high_hairline_shows_the_forehead_and_moves_no_other_draw(generator, data_root):
    from synface.datasets.spec import DatasetSpec
    from synface.faces.templates import template
    from synface.generate.generator import generator_signature

    high = FaceGenerator(GeneratorConfig(size=(112, 96), hairline="high"))
    assert generator_signature(high.config) == generator_signature(generator.config) + " hairline=high"
    ids, samples = list(range(12)), [0] * 12
    plain, own = generator.latents(ids, samples), high.latents(ids, samples)
    low = high.low_band_columns
    assert [high.appearance.names[i] for i in low] == ["hair_mid", "hair_fringe", "hair_thick_mid", "hair_thick_fringe"]
    assert np.all(own.appearance[:, low] == 0) and np.any(plain.appearance[:, low] != 0)
    rest = np.setdiff1d(np.arange(plain.appearance.shape[1]), low)
    assert np.array_equal(plain.appearance[:, rest], own.appearance[:, rest])
    for name in ("shape", "expression", "pose", "illumination", "background"):
        assert np.array_equal(getattr(plain, name), getattr(own, name))
    # Frontal and neutral: the forehead between the brows and the crop's top is lighter
    # (skin, not hair) for the people whose hair came down to it; below the brows only the
    # auto-exposure (which sees the whole face's brightness) moves, and much less.
    for lat in (plain, own):
        lat.pose[:], lat.expression[:] = 0.0, 0.0
    before, after = generator.render(plain).astype(int), high.render(own).astype(int)
    brow_row = int(template((112, 96))[0, 1] - 10)
    had_low_hair = plain.appearance[:, low[0]] > 0
    forehead = (after - before)[:, 8:brow_row, 30:66].sum(-1).mean((1, 2))
    assert np.all(forehead[had_low_hair] > 20), forehead
    below = np.abs(after - before)[:, brow_row + 8:, 30:66].sum(-1).mean((1, 2))
    assert np.all(below[had_low_hair] < 0.5 * forehead[had_low_hair]), (below, forehead)
    assert below[had_low_hair].mean() < 0.2 * forehead[had_low_hair].mean()
    assert np.array_equal(high.render(own), FaceGenerator(GeneratorConfig(size=(112, 96), hairline="high")).render(own))
    with pytest.raises(ValueError, match="unknown hairline 'none'"):
        DatasetSpec(name="x", identities=1, samples=1, hairline="none")
